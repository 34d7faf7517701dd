//! One encoded event, shared by the history and every subscriber: the only place where an
//! event becomes its wire bytes, whether it was published here or read from an engine.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::engine::{Append, Body, Entry};
use crate::topic::Route;
use crate::wire::gzip::{self, Deflated};
use crate::wire::{encode, Data, EventId, ResetReason, WireFormat};

/// One encoded event, shared by the history and every subscriber.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// Local position, consecutive in the history (whatever the id looks like); set when the
    /// frame is placed there.
    pub(crate) seq: u64,
    pub(crate) id: EventId,
    pub(crate) bytes: Bytes,
    pub(crate) route: Arc<Route>,
    /// `bytes` deflated, made by the first gzip subscriber to send it and shared with the
    /// others; present only when the builder turned compression on, so that without it a
    /// frame costs no more than before.
    deflated: Option<Arc<OnceLock<Deflated>>>,
    /// The id on the wire when the publisher chose it (a Mercure update's): what a client
    /// sends back as its `Last-Event-ID`, looked up in the history to resume.
    pub(crate) wire_id: Option<Arc<str>>,
}

impl Frame {
    /// A frame not yet placed in the history.
    pub(crate) fn new(id: EventId, bytes: Bytes, route: Arc<Route>) -> Self {
        Self {
            seq: 0,
            id,
            bytes,
            route,
            deflated: None,
            wire_id: None,
        }
    }

    /// Keeps this frame's deflated bytes once made, for every gzip subscriber to share (from
    /// the live path and from the history alike).
    pub(crate) fn share_deflated(&mut self) {
        self.deflated.get_or_insert_with(Default::default);
    }

    /// The frame deflated for a gzip stream: once for all streams when shared, else for one.
    pub(crate) fn deflated(&self) -> Deflated {
        match &self.deflated {
            // Per event, not per subscriber: whoever comes first compresses.
            Some(shared) => shared.get_or_init(|| gzip::deflate(&self.bytes)).clone(),
            None => gzip::deflate(&self.bytes),
        }
    }

    /// An event whose id on the wire is `wire_id`, chosen by its publisher (numbered `id`
    /// here all the same, for the history and resuming), with an optional `retry:` field.
    pub(crate) fn with_wire_id(
        id: EventId,
        wire_id: Arc<str>,
        name: &str,
        data: Data<'_>,
        retry: Option<u64>,
        route: Arc<Route>,
    ) -> Self {
        // Always the named format: a publisher's data goes out as it was given.
        let bytes = encode::event_as(&wire_id, name, data, retry, WireFormat::Named);
        Self {
            wire_id: Some(wire_id),
            ..Self::new(id, bytes, route)
        }
    }

    /// The event `name` with `data`, encoded once as the event `id`.
    pub(crate) fn event(
        id: EventId,
        name: &str,
        data: Data<'_>,
        route: Arc<Route>,
        format: WireFormat,
    ) -> Self {
        Self::new(id, encode::event(id, name, data, format), route)
    }

    /// A reset for every subscriber (counted by whoever decided on it).
    pub(crate) fn reset(id: EventId, reason: ResetReason, format: WireFormat) -> Self {
        Self::new(
            id,
            reset_bytes(id, reason, format),
            Arc::new(Route::everyone()),
        )
    }

    /// An engine's entry, encoded once for this instance's history and subscribers (or for
    /// one replaying subscriber).
    pub(crate) fn encode(entry: Entry, format: WireFormat) -> Self {
        match entry.body {
            Body::Event(Append {
                name,
                data,
                json,
                route,
                wire_id,
                retry,
            }) => {
                let data = if json {
                    Data::Json(&data)
                } else {
                    Data::Text(&data)
                };
                match wire_id {
                    Some(wire_id) => {
                        Self::with_wire_id(entry.id, wire_id.into(), &name, data, retry, route)
                    }
                    None => Self::event(entry.id, &name, data, route, format),
                }
            }
            Body::Reset(reason) => Self::reset(entry.id, reason, format),
        }
    }
}

/// The reset event for `reason`, the id to resume from afterwards being `id`: for one
/// subscriber, or inside a [`Frame::reset`] for all. Counted by whoever decided on it,
/// through [`Counters::reset`](super::stats::Counters::reset).
pub(crate) fn reset_bytes(id: EventId, reason: ResetReason, format: WireFormat) -> Bytes {
    encode::reset(id, reason, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_frame_is_deflated_once_for_every_subscriber() {
        let route = Arc::new(Route::everyone());
        let json = Data::Json("{\"a\":1}");
        let mut frame = Frame::event(EventId::new(1, 1), "e", json, route, WireFormat::Named);
        let alone = frame.clone();
        assert_ne!(
            alone.deflated().bytes.as_ptr(),
            alone.deflated().bytes.as_ptr()
        );
        frame.share_deflated();
        let (first, second) = (frame.clone(), frame);
        assert_eq!(
            first.deflated().bytes.as_ptr(),
            second.deflated().bytes.as_ptr()
        );
    }
}
