//! The SSE wire format (WHATWG HTML, "Server-sent events"), written once per event.
//!
//! Every function here builds a complete frame into one `Bytes`; the broadcaster then hands
//! clones of that `Bytes` (a reference count, not a copy) to every subscriber.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::{EventId, ResetReason};
use crate::error::PublishError;

/// The event a client receives when it cannot be resumed from where it was: its
/// `Last-Event-ID` is unknown, malformed or too old, or it fell behind further than the history
/// reaches. Its data is `{"reason": "...", "code": "..."}` (see [`ResetReason`]); a client
/// should refetch its state.
pub const RESET_EVENT: &str = "sse-reset";

/// Checks that `name` can be sent in an `event:` field.
///
/// # Errors
///
/// [`PublishError::InvalidEventName`] with the reason (empty, too long, or a character that
/// cannot go in an `event:` line).
///
/// ```
/// assert!(sse_core::wire::validate_event_name("user_updated").is_ok());
/// assert!(sse_core::wire::validate_event_name("bad\nname").is_err());
/// ```
pub fn validate_event_name(name: &str) -> Result<(), PublishError> {
    match super::rules::event_name_problem(name) {
        Some(reason) => Err(PublishError::InvalidEventName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// How an event's payload is laid out on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireFormat {
    /// `event: <name>` and `data: <payload>`: standard named events, for
    /// `source.addEventListener("<name>", ...)`.
    #[default]
    Named,
    /// No `event:` field and `data: {"event": "<name>", "data": <payload>}`: the envelope of
    /// hand-written broadcasters, for existing clients that use `source.onmessage` and
    /// `JSON.parse(e.data).event`.
    Envelope,
}

/// The payload of one event, already serialized.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Data<'a> {
    /// A JSON document.
    Json(&'a str),
    /// Plain text, possibly with line breaks.
    Text(&'a str),
}

/// Encodes one complete event frame.
pub(crate) fn event(id: EventId, name: &str, data: Data<'_>, format: WireFormat) -> Bytes {
    event_as(&id.to_string(), name, data, None, format)
}

/// Encodes one complete event frame whose `id:` field is `id` as given (an id a publisher
/// chose, checked by the caller to hold no line break), with a `retry:` field when `retry` is
/// set.
pub(crate) fn event_as(
    id: &str,
    name: &str,
    data: Data<'_>,
    retry: Option<u64>,
    format: WireFormat,
) -> Bytes {
    let (json, text) = match data {
        Data::Json(s) => (Some(s), s),
        Data::Text(s) => (None, s),
    };
    let mut buf = BytesMut::with_capacity(id.len() + name.len() + text.len() + 48);
    buf.put_slice(b"id: ");
    buf.put_slice(id.as_bytes());
    buf.put_u8(b'\n');
    if let Some(retry) = retry {
        buf.put_slice(b"retry: ");
        buf.put_slice(retry.to_string().as_bytes());
        buf.put_u8(b'\n');
    }
    match format {
        WireFormat::Named => {
            buf.put_slice(b"event: ");
            buf.put_slice(name.as_bytes());
            buf.put_u8(b'\n');
            data_lines(&mut buf, text);
        }
        WireFormat::Envelope => {
            // A JSON string literal of the name cannot fail to serialize.
            let name = serde_json::to_string(name).unwrap_or_default();
            let quoted;
            let payload = match json {
                Some(json) => json,
                None => {
                    quoted = serde_json::to_string(text).unwrap_or_default();
                    &quoted
                }
            };
            buf.put_slice(b"data: {\"event\":");
            buf.put_slice(name.as_bytes());
            buf.put_slice(b",\"data\":");
            // JSON from serde_json has no raw line breaks, but a `Data::Json` may come from
            // elsewhere: split it like any other data.
            data_lines_continued(&mut buf, payload);
            buf.put_slice(b"}\n");
        }
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// Writes `data` as one or more `data:` lines. CR, LF and CRLF each end a line on the wire, so
/// each becomes a new `data:` line and the client's parser joins them back with `\n`.
fn data_lines(buf: &mut BytesMut, data: &str) {
    buf.put_slice(b"data: ");
    data_lines_continued(buf, data);
    buf.put_u8(b'\n');
}

/// Like [`data_lines`] for text that continues an already open `data:` line and is followed by
/// more of it.
fn data_lines_continued(buf: &mut BytesMut, data: &str) {
    let bytes = data.as_bytes();
    let mut start = 0;
    while let Some(at) = memchr::memchr2(b'\r', b'\n', &bytes[start..]) {
        let end = start + at;
        buf.put_slice(&bytes[start..end]);
        buf.put_slice(b"\ndata: ");
        start = end + 1;
        if bytes[end] == b'\r' && bytes.get(start) == Some(&b'\n') {
            start += 1;
        }
    }
    buf.put_slice(&bytes[start..]);
}

/// The reset event, with the id the client should resume from afterwards. Sent through
/// `fanout::frame::reset_bytes`; the fan-out's counters count it.
pub(crate) fn reset(id: EventId, reason: ResetReason, format: WireFormat) -> Bytes {
    let data =
        serde_json::json!({ "reason": reason.message(), "code": reason.label() }).to_string();
    event(id, RESET_EVENT, Data::Json(&data), format)
}

/// What a stream starts with: the `retry:` hint and, when no event will follow at once, the
/// current id, so that a client that reconnects before the next event still resumes at the
/// right place. A frame with an `id:` but no `data:` sets the client's last event id without
/// dispatching an event.
pub(crate) fn preamble(retry: Option<Duration>, id: Option<EventId>) -> Bytes {
    let mut buf = BytesMut::with_capacity(48);
    buf.put_slice(b": connected\n");
    if let Some(retry) = retry {
        buf.put_slice(format!("retry: {}\n", retry.as_millis()).as_bytes());
    }
    if let Some(id) = id {
        buf.put_slice(format!("id: {id}\n").as_bytes());
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A frame with only an `id:` line: moves the client's last event id (for its next
/// reconnect) past events it was not sent, without dispatching anything.
pub(crate) fn id_only(id: EventId) -> Bytes {
    Bytes::from(format!("id: {id}\n\n"))
}

/// A keep-alive comment that also moves the client's last event id past skipped events.
pub(crate) fn keep_alive_with_id(id: EventId) -> Bytes {
    Bytes::from(format!(": keep-alive\nid: {id}\n\n"))
}

/// A comment frame: ignored by clients, keeps proxies from closing an idle stream.
pub(crate) const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).expect("frames are UTF-8")
    }

    #[test]
    fn named_event() {
        let f = event(
            EventId::new(35, 7),
            "user_updated",
            Data::Json(r#"{"id":1}"#),
            WireFormat::Named,
        );
        assert_eq!(
            text(&f),
            "id: z-7\nevent: user_updated\ndata: {\"id\":1}\n\n"
        );
    }

    #[test]
    fn line_breaks_become_data_lines() {
        let f = event(
            EventId::new(1, 1),
            "t",
            Data::Text("a\nb\r\nc\rd\n\nevent: fake\n"),
            WireFormat::Named,
        );
        assert_eq!(
            text(&f),
            "id: 1-1\nevent: t\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: event: fake\ndata: \n\n"
        );
    }

    #[test]
    fn envelope() {
        let f = event(
            EventId::new(1, 2),
            "user_updated",
            Data::Json(r#"{"id":1}"#),
            WireFormat::Envelope,
        );
        assert_eq!(
            text(&f),
            "id: 1-2\ndata: {\"event\":\"user_updated\",\"data\":{\"id\":1}}\n\n"
        );
        let f = event(
            EventId::new(1, 3),
            "n",
            Data::Text("a\nb"),
            WireFormat::Envelope,
        );
        assert_eq!(
            text(&f),
            "id: 1-3\ndata: {\"event\":\"n\",\"data\":\"a\\nb\"}\n\n"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_event_name("ok.name:with spaces").is_ok());
        for bad in ["", "a\nb", "a\rb", "a\0b"] {
            assert!(validate_event_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn preamble_sets_id_without_event() {
        let p = preamble(Some(Duration::from_millis(1500)), Some(EventId::new(1, 0)));
        assert_eq!(text(&p), ": connected\nretry: 1500\nid: 1-0\n\n");
    }

    mod round_trip {
        use super::*;
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;
        use proptest::prelude::*;

        /// Parses `wire`, fed in chunks split at `cuts`, with an independent spec-following
        /// parser.
        fn parse(wire: &[u8], cuts: &[usize]) -> Vec<eventsource_stream::Event> {
            let mut chunks = Vec::new();
            let mut start = 0;
            for &cut in cuts {
                let cut = cut.min(wire.len()).max(start);
                chunks.push(Ok::<_, std::convert::Infallible>(Bytes::copy_from_slice(
                    &wire[start..cut],
                )));
                start = cut;
            }
            chunks.push(Ok(Bytes::copy_from_slice(&wire[start..])));
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(
                futures_util::stream::iter(chunks)
                    .eventsource()
                    .map(|e| e.expect("valid stream"))
                    .collect(),
            )
        }

        fn name() -> impl Strategy<Value = String> {
            "[^\r\n\u{0}]{1,24}"
        }

        proptest! {
            #[test]
            fn any_text_payload_comes_back(
                name in name(),
                data in any::<String>(),
                seq in any::<u64>(),
                mut cuts in proptest::collection::vec(0usize..512, 0..4),
            ) {
                cuts.sort_unstable();
                let id = EventId::new(12345, seq);
                let mut wire = preamble(Some(Duration::from_secs(1)), Some(EventId::new(1, 0))).to_vec();
                wire.extend_from_slice(&event(id, &name, Data::Text(&data), WireFormat::Named));
                wire.extend_from_slice(KEEP_ALIVE);
                let events = parse(&wire, &cuts);
                prop_assert_eq!(events.len(), 1);
                let expected = data.replace("\r\n", "\n").replace('\r', "\n");
                prop_assert_eq!(&events[0].event, &name);
                prop_assert_eq!(&events[0].data, &expected);
                prop_assert_eq!(&events[0].id, &id.to_string());
            }

            #[test]
            fn any_json_payload_comes_back(
                name in name(),
                value in any::<Vec<(String, Option<i64>)>>(),
                envelope in any::<bool>(),
            ) {
                let json = serde_json::to_string(&value).expect("serializable");
                let format = if envelope { WireFormat::Envelope } else { WireFormat::Named };
                let wire = event(EventId::new(7, 9), &name, Data::Json(&json), format);
                let events = parse(&wire, &[]);
                prop_assert_eq!(events.len(), 1);
                let got: serde_json::Value = serde_json::from_str(&events[0].data).expect("json");
                if envelope {
                    prop_assert_eq!(&events[0].event, "message");
                    prop_assert_eq!(&got["event"], &serde_json::json!(name));
                    prop_assert_eq!(&got["data"], &serde_json::to_value(&value).expect("value"));
                } else {
                    prop_assert_eq!(&events[0].event, &name);
                    prop_assert_eq!(got, serde_json::to_value(&value).expect("value"));
                }
            }
        }
    }
}
