//! What the Redis engine queues in the shared outbox ([`crate::engine::outbox`]): an entry's
//! fields.

use crate::engine::Append;

/// An entry's fields, as `XADD` takes them.
pub(super) type Fields = Vec<(&'static str, String)>;

/// The fields of an event's stream entry.
pub(super) fn fields(event: Append) -> Fields {
    // Topics cannot contain control characters, so a line break separates them safely.
    let mut fields = vec![
        ("n", event.name),
        ("d", event.data),
        ("j", if event.json { "1" } else { "0" }.to_owned()),
        ("t", event.route.topics.join("\n")),
    ];
    if event.route.private {
        fields.push(("p", "1".to_owned()));
    }
    if let Some(origin) = &event.route.origin {
        fields.push(("o", origin.to_string()));
    }
    if let Some(wire_id) = event.wire_id {
        fields.push(("w", wire_id));
    }
    if let Some(retry) = event.retry {
        fields.push(("y", retry.to_string()));
    }
    fields
}
