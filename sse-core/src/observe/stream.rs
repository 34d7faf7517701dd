//! One stream, observed: its `sse.stream` span, its metrics, and what it wrote, added
//! up locally and reported in batches, so a write costs a few additions and no shared atomic.

use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use tracing::field::Empty;
use tracing::Span;

use super::inspect;
use super::metrics;
use super::notes::{self, Notes};
use crate::topic::Filter;
use crate::wire::{EventId, LastEventId};

/// Writes between two reports of a stream's counters (also reported at each keep-alive and
/// when it ends).
const REPORT_EVERY: u32 = 64;

/// One write in this many has its publish-to-write latency measured.
const SAMPLE_EVERY: u32 = 64;

/// A stream about to open: made before the subscriber is registered, so that what the
/// registration notes (a resume, a reset) is this stream's.
pub(crate) struct Opening {
    span: Span,
    resumed_from: Option<EventId>,
    resuming: bool,
    recorded: Option<inspect::Recorded>,
}

/// A stream of chunks, wrapped to observe what it writes and how it ends. Transparent: it
/// derefs to the stream it wraps. Small, since every open stream carries one: what only the
/// span and the inspector need is boxed apart, and absent when neither is on.
pub(crate) struct Observed<S> {
    inner: S,
    traced: Option<Box<Traced>>,
    opened: Instant,
    /// Not yet reported.
    bytes: u64,
    deliveries: u32,
    keep_alives: u32,
    unreported: u32,
    until_sample: u32,
    /// How the stream ended, once its owner or the inner stream knows; else the client left.
    ending: Option<Ending>,
}

/// How a stream ended, for the span's `ended` and the duration metric's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Shutdown,
    Expired,
}

/// The `sse.stream` span (when enabled) and the inspector's record (when on).
struct Traced {
    span: Span,
    /// Opened with a `Last-Event-ID` whose outcome is not known yet.
    resuming: bool,
    /// Under the inspector, its place in the record: held only to be given back when the
    /// stream is dropped.
    _recorded: Option<inspect::Recorded>,
    /// Totals, for the span.
    writes: u64,
    written: u64,
    catch_ups: u32,
}

impl Opening {
    /// Starts observing a stream with `filter`, resuming after `last_event_id`.
    pub(crate) fn new(filter: &Filter, last_event_id: LastEventId) -> Opening {
        notes::clear();
        let resumed_from = match last_event_id {
            LastEventId::After(id) => Some(id),
            _ => None,
        };
        let span = tracing::info_span!(
            "sse.stream",
            topics = %inspect::topics_of(filter),
            resumed_from = Empty,
            missed = Empty,
            resume = Empty,
            catch_ups = Empty,
            writes = Empty,
            bytes = Empty,
            ended = Empty,
            duration_ms = Empty,
        );
        // The parsed id, or `malformed`: never the client's text, which may be kilobytes.
        match last_event_id {
            LastEventId::After(id) => {
                span.record("resumed_from", tracing::field::display(id));
            }
            LastEventId::Malformed => {
                span.record("resumed_from", "malformed");
            }
            LastEventId::Oldest => {
                span.record("resumed_from", "earliest");
            }
            LastEventId::None => {}
        }
        Opening {
            span,
            resumed_from,
            resuming: last_event_id != LastEventId::None,
            recorded: inspect::stream_opened(filter),
        }
    }
}

impl<S> Observed<S> {
    /// The stream for the request that was [opening](Opening::new), registered now; `head`
    /// reads the newest id (only when the span records how many events a resume missed).
    pub(crate) fn new(opening: Opening, inner: S, head: impl FnOnce() -> EventId) -> Self {
        if !opening.span.is_disabled() {
            if let Some(from) = opening.resumed_from {
                let head = head();
                if from.epoch() == head.epoch() && from.entry_parts().is_none() {
                    opening
                        .span
                        .record("missed", head.seq().saturating_sub(from.seq()));
                }
            }
        }
        let traced = (!opening.span.is_disabled() || opening.recorded.is_some()).then(|| {
            Box::new(Traced {
                span: opening.span,
                resuming: opening.resuming,
                _recorded: opening.recorded,
                writes: 0,
                written: 0,
                catch_ups: 0,
            })
        });
        metrics::stream_opened();
        let mut this = Self {
            inner,
            traced,
            opened: Instant::now(),
            bytes: 0,
            deliveries: 0,
            keep_alives: 0,
            unreported: 0,
            // The first event write is sampled, so a quiet stream shows its latency too.
            until_sample: 1,
            ending: None,
        };
        this.noted(notes::take());
        this
    }

    /// The stream it wraps, to change.
    pub(crate) fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Tells how the stream is ending, for the span and the metrics; a stream dropped without
    /// it ended because its client left. The first told is kept.
    pub(crate) fn ending(&mut self, how: Ending) {
        self.ending.get_or_insert(how);
    }

    /// Takes what the fan-out noted during a poll (or the registration).
    fn noted(&mut self, notes: Notes) {
        let Some(traced) = &mut self.traced else {
            return;
        };
        if traced.resuming && (notes.resumed || notes.reset.is_some()) {
            traced.resuming = false;
            let outcome = if notes.resumed { "resumed" } else { "reset" };
            traced.span.record("resume", outcome);
        }
        traced.catch_ups = traced.catch_ups.saturating_add(notes.caught_up);
    }

    fn wrote(&mut self, chunk: &Bytes) {
        let len = chunk.len() as u64;
        if let Some(traced) = &mut self.traced {
            traced.writes += 1;
            traced.written += len;
        }
        self.bytes += len;
        self.unreported += 1;
        let keep_alive = chunk.starts_with(b": keep-alive");
        if keep_alive {
            self.keep_alives += 1;
        } else if chunk.first() != Some(&b':') {
            self.deliveries += 1;
            self.until_sample -= 1;
            if self.until_sample == 0 {
                self.until_sample = SAMPLE_EVERY;
                metrics::sample(chunk);
            }
        }
        if keep_alive || self.unreported >= REPORT_EVERY {
            self.report();
        }
    }

    fn report(&mut self) {
        if self.unreported == 0 {
            return;
        }
        metrics::stream_wrote(
            u64::from(self.deliveries),
            self.bytes,
            u64::from(self.keep_alives),
        );
        (
            self.deliveries,
            self.bytes,
            self.keep_alives,
            self.unreported,
        ) = (0, 0, 0, 0);
    }
}

impl<S> Deref for Observed<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.inner
    }
}

impl<S: Stream<Item = Bytes> + Unpin> Stream for Observed<S> {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        let polled = match &this.traced {
            Some(traced) if !traced.span.is_disabled() => {
                notes::clear();
                let polled = traced
                    .span
                    .in_scope(|| Pin::new(&mut this.inner).poll_next(cx));
                this.noted(notes::take());
                polled
            }
            _ => Pin::new(&mut this.inner).poll_next(cx),
        };
        match &polled {
            Poll::Ready(Some(chunk)) => this.wrote(chunk),
            Poll::Ready(None) => this.ending(Ending::Shutdown),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Observed<S> {
    fn drop(&mut self) {
        self.report();
        let ended = match self.ending {
            Some(Ending::Shutdown) => "shutdown",
            Some(Ending::Expired) => "expired",
            None => "client_gone",
        };
        let lasted = self.opened.elapsed();
        metrics::stream_closed(ended, lasted);
        let Some(traced) = &self.traced else {
            return;
        };
        let span = &traced.span;
        span.record("catch_ups", traced.catch_ups);
        span.record("writes", traced.writes);
        span.record("bytes", traced.written);
        span.record("ended", ended);
        span.record(
            "duration_ms",
            u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX),
        );
    }
}
