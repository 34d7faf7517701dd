//! What one JetStream message holds: a batch of events (and reset markers) published
//! together by one instance, as a JSON array, one short-keyed record each.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::engine::{Append, Body, Entry};
use crate::topic::Route;
use crate::wire::{EventId, ResetReason};

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
    /// The id on the wire its publisher chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<String>,
    /// The `retry:` its publisher asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<u64>,
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
            w: event.wire_id,
            y: event.retry,
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
        self.n.len()
            + self.d.len()
            + self.w.as_ref().map_or(0, String::len)
            + self.t.iter().map(|t| t.len() + 3).sum::<usize>()
            + 32
    }

    /// The entry `id`, decoded (the fan-out encodes it); `None` if malformed.
    pub(super) fn into_entry(self, id: EventId) -> Option<Entry> {
        if let Some(reason) = &self.r {
            let body = Body::Reset(ResetReason::from_marker(reason));
            return Some(Entry { id, body });
        }
        crate::wire::validate_event_name(&self.n).ok()?;
        let route = Route {
            topics: self.t.iter().map(|t| t.as_str().into()).collect(),
            private: self.p,
            origin: self.o.map(Into::into),
            everyone: false,
        };
        let event = Append {
            name: self.n,
            data: self.d,
            json: self.j,
            route: Arc::new(route),
            wire_id: self.w.filter(|w| !w.contains(['\r', '\n'])),
            retry: self.y,
        };
        Some(Entry {
            id,
            body: Body::Event(event),
        })
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

/// The entries of message `seq` of the stream of epoch `epoch`, after event `after` (its
/// index in the message) if given; malformed events are counted in the second value.
pub(super) fn entries(
    epoch: u64,
    seq: u64,
    records: Vec<Record>,
    after: Option<u64>,
) -> (Vec<Entry>, usize) {
    let mut entries = Vec::with_capacity(records.len());
    let mut malformed = 0;
    for (n, record) in (0u64..).zip(records) {
        if after.is_some_and(|after| n <= after) {
            continue;
        }
        match record.into_entry(EventId::entry(epoch, seq, n)) {
            Some(entry) => entries.push(entry),
            None => malformed += 1,
        }
    }
    (entries, malformed)
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
            wire_id: Some("urn:uuid:1".into()),
            retry: Some(5),
        });
        let reset = Record::reset("lost 3".into());
        let payload = encode_batch(&[&reset, &event]).unwrap();
        let records = decode_batch(&payload).unwrap();
        let (entries, malformed) = entries(7, 42, records.clone(), None);
        assert_eq!(malformed, 0);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].id.position(), (42, 1));
        assert!(matches!(entries[0].body, Body::Reset(_)));
        let route = entries[1].route().expect("an event");
        assert_eq!(&*route.topics, &[Box::<str>::from("x/1"), Box::from("y")]);
        assert!(route.private);
        let (after_first, _) = entries_after(records);
        assert_eq!(after_first, 1);
        assert!(decode_batch(b"not json").is_none());
    }

    fn entries_after(records: Vec<Record>) -> (usize, usize) {
        let (e, m) = entries(7, 42, records, Some(0));
        (e.len(), m)
    }
}
