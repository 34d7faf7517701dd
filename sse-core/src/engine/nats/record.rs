//! What one JetStream message holds: a batch of events (and reset markers) published
//! together by one instance, as a JSON array, one short-keyed record each.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::engine::{Append, Frame};
use crate::topic::Route;
use crate::wire::ResetReason;
use crate::wire::{encode, Data, EventId, WireFormat};

/// One event of a message.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Record {
    /// A reset marker's reason (then nothing else is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    #[serde(default)]
    n: String,
    #[serde(default)]
    d: String,
    /// `d` is a JSON document (else plain text).
    #[serde(default, skip_serializing_if = "is_false")]
    j: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    t: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    p: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl Record {
    pub(super) fn event(event: Append) -> Self {
        Self {
            r: None,
            n: event.name,
            d: event.data,
            j: event.json,
            t: event.route.topics.iter().map(|t| t.to_string()).collect(),
            p: event.route.private,
            o: event.route.origin.as_ref().map(|o| o.to_string()),
        }
    }

    pub(super) fn reset(reason: String) -> Self {
        Self {
            r: Some(reason),
            ..Self::default()
        }
    }

    /// About the bytes it takes in a message.
    pub(super) fn size(&self) -> usize {
        self.n.len() + self.d.len() + self.t.iter().map(|t| t.len() + 3).sum::<usize>() + 32
    }

    /// Encoded once, as the event `id` (for every subscriber); `None` if malformed.
    pub(super) fn frame(&self, id: EventId, format: WireFormat) -> Option<Frame> {
        if let Some(reason) = &self.r {
            let bytes = crate::observe::reset_frame(id, ResetReason::from_marker(reason), format);
            return Some(Frame::new(id, bytes, Arc::new(Route::everyone())));
        }
        crate::wire::validate_event_name(&self.n).ok()?;
        let route = Route {
            topics: self.t.iter().map(|t| t.as_str().into()).collect(),
            private: self.p,
            origin: self.o.as_deref().map(Into::into),
            everyone: false,
        };
        let data = if self.j {
            Data::Json(&self.d)
        } else {
            Data::Text(&self.d)
        };
        let bytes = encode::event(id, &self.n, data, format);
        Some(Frame::new(id, bytes, Arc::new(route)))
    }
}

/// A message's payload.
pub(super) fn encode_batch(records: &[&Record]) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(records).map(Bytes::from)
}

/// The events of a message; `None` if it is not one of ours.
pub(super) fn decode_batch(payload: &[u8]) -> Option<Vec<Record>> {
    serde_json::from_slice(payload).ok()
}

/// The frames of message `seq` of the stream of epoch `epoch`, after event `after` (its
/// index in the message) if given; malformed events are counted in the second value.
pub(super) fn frames(
    epoch: u64,
    seq: u64,
    records: &[Record],
    after: Option<u64>,
    format: WireFormat,
) -> (Vec<Frame>, usize) {
    let mut frames = Vec::with_capacity(records.len());
    let mut malformed = 0;
    for (n, record) in (0u64..).zip(records) {
        if after.is_some_and(|after| n <= after) {
            continue;
        }
        match record.frame(EventId::entry(epoch, seq, n), format) {
            Some(frame) => frames.push(frame),
            None => malformed += 1,
        }
    }
    (frames, malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_numbers_its_events() {
        let event = Record::event(Append {
            name: "e".into(),
            data: "{\"a\":1}".into(),
            json: true,
            route: Arc::new(Route {
                topics: vec!["x/1".into(), "y".into()].into(),
                private: true,
                origin: Some("c1".into()),
                everyone: false,
            }),
        });
        let reset = Record::reset("lost 3".into());
        let payload = encode_batch(&[&reset, &event]).unwrap();
        let records = decode_batch(&payload).unwrap();
        let (frames, malformed) = frames(7, 42, &records, None, WireFormat::Named);
        assert_eq!(malformed, 0);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].id.position(), (42, 1));
        assert!(frames[0].route.everyone);
        assert_eq!(
            &*frames[1].route.topics,
            &[Box::<str>::from("x/1"), Box::from("y")]
        );
        assert!(frames[1].route.private);
        let (after_first, _) = frames_after(&records);
        assert_eq!(after_first, 1);
        assert!(decode_batch(b"not json").is_none());
    }

    fn frames_after(records: &[Record]) -> (usize, usize) {
        let (f, m) = frames(7, 42, records, Some(0), WireFormat::Named);
        (f.len(), m)
    }
}
