//! The `sse.emit` and `sse.stream` spans, seen by a capturing subscriber: a trace shows which
//! request caused which event, and how each stream went.
#![cfg(feature = "macros")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web::Json;
use futures_util::StreamExt;
use sse_core::{emit_event, Broadcaster};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span as the subscriber saw it: its name, its parent's name, its fields.
#[derive(Clone, Debug, Default)]
struct Seen {
    name: String,
    parent: Option<String>,
    fields: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<HashMap<u64, Seen>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|p| p.name().to_owned());
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            parent,
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.0
            .lock()
            .expect("capture lock")
            .insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.0.lock().expect("capture lock").get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
}

impl Capture {
    fn named(&self, name: &str) -> Vec<Seen> {
        let spans = self.0.lock().expect("capture lock");
        spans.values().filter(|s| s.name == name).cloned().collect()
    }
}

#[derive(serde::Serialize)]
struct User {
    id: u64,
}

// `#[emit_event]` above `#[instrument]`: attributes expand outermost first, so the
// instrumented body then includes the publish. (A request span, such as tracing-actix-web's,
// is a parent in either order.)
#[emit_event("user_updated", topic = "users/{id}")]
#[tracing::instrument(name = "rename_user")]
async fn rename_user() -> Json<User> {
    Json(User { id: 42 })
}

#[tokio::test]
async fn an_emit_span_is_a_child_of_the_handlers_span() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let events = Broadcaster::new();
    let _stream = events.subscribe(None).unwrap();
    events.scope(rename_user()).await;

    let emits = capture.named("sse.emit");
    assert_eq!(emits.len(), 1, "{emits:?}");
    let emit = &emits[0];
    assert_eq!(emit.parent.as_deref(), Some("rename_user"));
    assert_eq!(emit.fields["event"], "user_updated");
    assert_eq!(emit.fields["topics"], "users/42");
    assert_eq!(emit.fields["id"], events.last_event_id().to_string());
    assert_eq!(emit.fields["bytes"], r#"{"id":42}"#.len().to_string());
    assert_eq!(emit.fields["subscribers"], "1");
}

#[tokio::test]
async fn a_stream_span_tells_how_the_stream_went() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let events = Broadcaster::builder().keep_alive(None).build();
    let first = events.publish("e", &1).unwrap();
    events.publish("e", &2).unwrap();
    events.publish("e", &3).unwrap();
    {
        let request = tracing::info_span!("request");
        let mut stream = request.in_scope(|| events.subscribe(Some(first)).unwrap());
        let mut bytes = 0;
        while let Some(Some(Ok(chunk))) = futures_util::FutureExt::now_or_never(stream.next()) {
            bytes += chunk.len();
        }
        assert!(bytes > 0);
        drop(stream);
        let spans = capture.named("sse.stream");
        assert_eq!(spans.len(), 1, "{spans:?}");
        let span = &spans[0];
        assert_eq!(span.parent.as_deref(), Some("request"));
        assert_eq!(span.fields["topics"], "*");
        assert_eq!(span.fields["resumed_from"], first.to_string());
        assert_eq!(span.fields["missed"], "2");
        assert_eq!(span.fields["resume"], "resumed");
        assert_eq!(span.fields["bytes"], bytes.to_string());
        assert_eq!(span.fields["ended"], "client_gone");
        assert_eq!(span.fields["catch_ups"], "0");
        assert!(span.fields.contains_key("duration_ms"));
    }

    let request = actix_web::test::TestRequest::default()
        .insert_header(("last-event-id", "garbage"))
        .to_http_request();
    let _response = events.respond(&request);
    let spans = capture.named("sse.stream");
    let reset = spans
        .iter()
        .find(|s| s.fields["resumed_from"] == "malformed")
        .expect("second stream");
    assert_eq!(reset.fields["resume"], "reset");
}
