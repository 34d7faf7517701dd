//! What happens to a handler's payload: serialized once, each event's topic filled from it,
//! then published to the current target, or recorded by a test capture through the very same
//! steps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};

use serde::Serialize;
use serde_json::Value;

use super::capture::CapturedEvent;
use super::client_id;
use super::scope::{current_target, Target, REGISTER_HINT};
use crate::error::InvalidTopic;
use crate::fanout::{Broadcaster, Counters, EmitFailure};
use crate::observe;
use crate::topic::{self, Route};

/// One `#[emit_event(...)]` attribute, as the macro passes it on.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct EventSpec<'a> {
    pub name: &'a str,
    /// A topic template; `None`: the event name.
    pub topic: Option<&'a str>,
    pub private: bool,
    pub to_others: bool,
}

impl EventSpec<'_> {
    fn topic(&self, payload: Option<&Value>) -> Result<String, InvalidTopic> {
        match self.topic {
            None => Ok(self.name.to_owned()),
            Some(template) => topic::render(template, payload.unwrap_or(&Value::Null)),
        }
    }
}

/// Why an event was not published.
enum Failure<'e> {
    Serialize(&'e serde_json::Error),
    Topic(&'e InvalidTopic),
}

/// The payload, serialized once for all of a handler's events, and each event's route.
struct Prepared<'a> {
    json: String,
    /// The payload as a value, read back only when a template or a capture needs it.
    value: Option<Value>,
    routes: Vec<(&'a EventSpec<'a>, Result<Arc<Route>, InvalidTopic>)>,
}

fn prepare<'a, T: Serialize + ?Sized>(
    events: &'a [EventSpec<'a>],
    payload: &T,
    want_value: bool,
) -> Result<Prepared<'a>, serde_json::Error> {
    let json = serde_json::to_string(payload)?;
    let value = (want_value
        || events
            .iter()
            .any(|e| e.topic.is_some_and(topic::has_fields)))
    .then(|| serde_json::from_str::<Value>(&json))
    .transpose()?;
    let origin = if events.iter().any(|e| e.to_others) {
        sender()
    } else {
        None
    };
    let routes = events
        .iter()
        .map(|event| {
            let route = event.topic(value.as_ref()).map(|topic| {
                Arc::new(Route {
                    topics: Box::new([topic.into()]),
                    private: event.private,
                    origin: origin.clone().filter(|_| event.to_others),
                    everyone: false,
                })
            });
            (event, route)
        })
        .collect();
    Ok(Prepared {
        json,
        value,
        routes,
    })
}

pub(super) fn dispatch<T: Serialize + ?Sized>(events: &[EventSpec<'_>], payload: &T) {
    let Some(target) = current_target() else {
        events.iter().for_each(|_| Counters::emit_unregistered());
        let names: Vec<_> = events.iter().map(|e| e.name).collect();
        tracing::error!(
            events = ?names,
            "event not published: no sse_core::Broadcaster is registered for this handler; {}",
            REGISTER_HINT
        );
        return;
    };
    let capture = match &target {
        Target::Capture(_) => true,
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        Target::Pending(pending) => {
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .capturing
        }
        Target::Broadcaster(_) => false,
    };
    let prepared = match prepare(events, payload, capture) {
        Ok(prepared) => prepared,
        Err(err) => {
            for event in events {
                failed(&target, event, &Failure::Serialize(&err));
            }
            return;
        }
    };
    for (event, route) in &prepared.routes {
        let route = match route {
            Ok(route) => route.clone(),
            Err(err) => {
                failed(&target, event, &Failure::Topic(err));
                continue;
            }
        };
        match &target {
            Target::Broadcaster(broadcaster) => publish(broadcaster, event, &prepared.json, route),
            Target::Capture(sink) => sink
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(captured(event, &prepared, &route)),
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            Target::Pending(pending) => {
                let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
                if pending.capturing {
                    let captured = captured(event, &prepared, &route);
                    pending.captured.push(captured);
                }
                pending.events.push(crate::engine::Append {
                    name: event.name.to_owned(),
                    data: prepared.json.clone(),
                    json: true,
                    route,
                    wire_id: None,
                    retry: None,
                });
            }
        }
    }
}

/// What a capture records of one event.
fn captured(event: &EventSpec<'_>, prepared: &Prepared<'_>, route: &Route) -> CapturedEvent {
    CapturedEvent {
        name: event.name.to_owned(),
        payload: prepared.value.clone().unwrap_or(Value::Null),
        topics: route.topics.iter().map(|t| t.to_string()).collect(),
        private: route.private,
        to_others: event.to_others,
    }
}

/// Publishes one event inside its `sse.emit` span, a child of the handler's.
fn publish(broadcaster: &Broadcaster, event: &EventSpec<'_>, json: &str, route: Arc<Route>) {
    let span = observe::emit_span(event.name, &route, json.len());
    let _entered = span.enter();
    let result = broadcaster.publish_json(event.name, json, route);
    let counters = broadcaster.counters();
    observe::emitted(&span, &result, counters.subscribers());
    if let Err(err) = result {
        counters.emit_failed(EmitFailure::Publish);
        tracing::error!(event = event.name, %err, "event not published");
    }
}

/// Logs a failure, and counts it when the target is a broadcaster; a transaction's failure
/// rolls it back.
fn failed(target: &Target, event: &EventSpec<'_>, failure: &Failure<'_>) {
    match target {
        Target::Broadcaster(broadcaster) => {
            broadcaster.counters().emit_failed(match failure {
                Failure::Serialize(_) => EmitFailure::Serialize,
                Failure::Topic(_) => EmitFailure::Topic,
            });
        }
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        Target::Pending(pending) => {
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(broadcaster) = &pending.broadcaster {
                broadcaster.counters().emit_failed(match failure {
                    Failure::Serialize(_) => EmitFailure::Serialize,
                    Failure::Topic(_) => EmitFailure::Topic,
                });
            }
            if pending.failure.is_none() {
                pending.failure = Some(crate::error::TxError::Event {
                    event: event.name.to_owned(),
                    reason: match failure {
                        Failure::Serialize(err) => format!("payload not serializable: {err}"),
                        Failure::Topic(err) => format!("topic: {err}"),
                    },
                });
            }
        }
        Target::Capture(_) => {}
    }
    match failure {
        Failure::Serialize(err) => tracing::error!(
            event = event.name,
            %err,
            "event not published: its payload could not be serialized"
        ),
        Failure::Topic(err) => tracing::error!(
            event = event.name,
            template = event.topic,
            %err,
            "event not published: its topic template cannot be filled from the payload"
        ),
    }
}

/// The client whose request is being handled, for `to_others`; warns once when the
/// middleware that knows it is missing.
fn sender() -> Option<Arc<str>> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !client_id::middleware_active() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "an `#[emit_event(.., to_others)]` handler ran without the client id middleware, so \
             its event is echoed to the sender too; add \
             `.wrap(sse_core::http::ClientIdMiddleware)` to the `App`"
        );
    }
    client_id::current()
}
