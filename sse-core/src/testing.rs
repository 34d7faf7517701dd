//! Helpers for testing handlers annotated with `#[emit_event]`: capture their events, expect
//! one in the words of the domain, and check the event catalogue; and an in-memory event log
//! for testing code that runs several instances (`MemoryStore`).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::emit::CapturedEvent;
use crate::emit::{scoped, Target};
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use crate::engine::memory::MemoryStore;

/// Runs `fut` (a handler called directly, or `actix_web::test::call_service`) and returns its
/// output with the events its `#[emit_event]` handlers emitted, in order. Nothing is
/// published.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use actix_web::web::Json;
/// use sse_core::emit_event;
///
/// #[derive(serde::Serialize)]
/// struct User { id: u32, name: String }
///
/// #[emit_event("user_created")]
/// async fn create(name: String) -> Result<Json<User>, actix_web::Error> {
///     Ok(Json(User { id: 1, name }))
/// }
///
/// let (response, events) = sse_core::testing::capture(create("ada".into())).await;
/// assert!(response.is_ok());
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].name, "user_created");
/// assert_eq!(events[0].payload, serde_json::json!({"id": 1, "name": "ada"}));
/// # }
/// ```
pub async fn capture<F: Future>(fut: F) -> (F::Output, Vec<CapturedEvent>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let output = scoped(Target::Capture(sink.clone()), fut).await;
    let events = std::mem::take(&mut *sink.lock().unwrap_or_else(PoisonError::into_inner));
    (output, events)
}

/// Fails with every problem of the event [catalogue](crate::contract::Catalogue), each with its source
/// locations: an event name published with two different payloads (or both privately and
/// publicly), an invalid name or topic template, a topic field its payload's schema lacks.
/// One line in a test keeps the contract honest:
///
/// ```
/// // In a `#[test]` of the crate whose handlers it should see:
/// sse_core::testing::check_catalogue();
/// ```
#[track_caller]
pub fn check_catalogue() {
    let problems = crate::contract::Catalogue::linked().problems();
    if !problems.is_empty() {
        panic!(
            "the event catalogue has {} problem(s):\n- {}",
            problems.len(),
            problems.join("\n- ")
        );
    }
}

/// Expects a captured event, in the words of the domain; see [`ExpectEvent`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use actix_web::web::Json;
/// use serde_json::json;
/// use sse_core::{emit_event, testing::{capture, expect_event}};
///
/// #[derive(serde::Serialize)]
/// struct User { id: u32, name: String }
///
/// #[emit_event("user_updated", topic = "users/{id}")]
/// async fn rename() -> Json<User> {
///     Json(User { id: 7, name: "ada".into() })
/// }
///
/// let (_, events) = capture(rename()).await;
/// expect_event("user_updated")
///     .topic("users/7")
///     .public()
///     .payload_contains(json!({"id": 7}))
///     .without_field("email")
///     .in_(&events);
/// # }
/// ```
pub fn expect_event(name: &str) -> ExpectEvent {
    ExpectEvent {
        name: name.to_owned(),
        topic: None,
        private: None,
        to_others: None,
        contains: None,
        without: Vec::new(),
    }
}

/// What a captured event must be, built by [`expect_event`] and checked by
/// [`ExpectEvent::in_`].
#[derive(Clone, Debug)]
#[must_use = "nothing is checked until `.in_(&events)`"]
pub struct ExpectEvent {
    name: String,
    topic: Option<String>,
    private: Option<bool>,
    to_others: Option<bool>,
    contains: Option<serde_json::Value>,
    without: Vec<String>,
}

impl ExpectEvent {
    /// Published to this topic.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.to_owned());
        self
    }

    /// A public event: every subscriber of its topic gets it.
    pub fn public(mut self) -> Self {
        self.private = Some(false);
        self
    }

    /// A private event: only subscribers authorized for its topic get it.
    pub fn private(mut self) -> Self {
        self.private = Some(true);
        self
    }

    /// Not echoed to the client that caused it.
    pub fn to_others(mut self) -> Self {
        self.to_others = Some(true);
        self
    }

    /// The payload has at least these fields with these values (objects recursively; arrays
    /// and other values equal, element by element).
    pub fn payload_contains(mut self, subset: serde_json::Value) -> Self {
        self.contains = Some(subset);
        self
    }

    /// The payload has no field at this `.`-separated path (say, `email`), at any depth of
    /// arrays on the way.
    pub fn without_field(mut self, path: &str) -> Self {
        self.without.push(path.to_owned());
        self
    }

    /// Returns the first of `events` that matches; fails listing why each event of that name
    /// does not, with the differences of its payload.
    #[track_caller]
    pub fn in_<'e>(&self, events: &'e [CapturedEvent]) -> &'e CapturedEvent {
        let mut reasons = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if event.name != self.name {
                continue;
            }
            let problems = self.mismatches(event);
            if problems.is_empty() {
                return event;
            }
            reasons.push(format!(
                "  event #{i} `{}` on {:?}{}:\n    - {}\n    payload: {}",
                event.name,
                event.topics,
                if event.private {
                    ", private"
                } else {
                    ", public"
                },
                problems.join("\n    - "),
                serde_json::to_string_pretty(&event.payload)
                    .unwrap_or_default()
                    .replace('\n', "\n    ")
            ));
        }
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        if reasons.is_empty() {
            panic!("no `{}` event was emitted; emitted: {names:?}", self.name);
        }
        panic!(
            "no `{}` event matches {self:?}:\n{}",
            self.name,
            reasons.join("\n")
        );
    }

    fn mismatches(&self, event: &CapturedEvent) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(topic) = &self.topic {
            if !event.topics.iter().any(|t| t == topic) {
                out.push(format!(
                    "topic: expected {topic:?}, found {:?}",
                    event.topics
                ));
            }
        }
        if let Some(private) = self.private {
            if event.private != private {
                out.push(format!(
                    "expected a {} event, found a {} one",
                    if private { "private" } else { "public" },
                    if event.private { "private" } else { "public" }
                ));
            }
        }
        if let Some(to_others) = self.to_others {
            if event.to_others != to_others {
                out.push(format!(
                    "to_others: expected {to_others}, found {}",
                    event.to_others
                ));
            }
        }
        if let Some(subset) = &self.contains {
            json_subset(subset, &event.payload, "payload", &mut out);
        }
        for path in &self.without {
            let mut found = Vec::new();
            find_field(&event.payload, path, "payload", &mut found);
            for at in found {
                out.push(format!("{at} is present, expected no such field"));
            }
        }
        out
    }
}

/// Where `expected` is not contained in `actual`, as `path: expected X, found Y` lines.
fn json_subset(
    expected: &serde_json::Value,
    actual: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, want) in want {
                let at = format!("{path}.{key}");
                match have.get(key) {
                    Some(have) => json_subset(want, have, &at, out),
                    None => out.push(format!("{at}: expected {want}, found no such field")),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (i, (want, have)) in want.iter().zip(have).enumerate() {
                json_subset(want, have, &format!("{path}[{i}]"), out);
            }
        }
        _ if expected == actual => {}
        _ => out.push(format!("{path}: expected {expected}, found {actual}")),
    }
}

fn find_field(value: &serde_json::Value, path: &str, at: &str, found: &mut Vec<String>) {
    use serde_json::Value;
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_field(item, path, &format!("{at}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            if let Some(next) = map.get(head) {
                let at = format!("{at}.{head}");
                match rest {
                    None => found.push(at),
                    Some(rest) => find_field(next, rest, &at, found),
                }
            }
        }
        _ => {}
    }
}
