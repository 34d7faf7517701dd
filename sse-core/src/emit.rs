//! How `#[emit_event]` finds the payload in a handler's return value and the broadcaster to
//! publish it to.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use actix_web::http::StatusCode;
use actix_web::web::Json;
use actix_web::Either;
use serde::Serialize;
use serde_json::Value;

use crate::broadcaster::Shared;
use crate::filter::Route;
use crate::testing::CapturedEvent;
use crate::topic::{self, InvalidTopic};
use crate::Broadcaster;

/// A handler return type from which [`#[emit_event]`](crate::emit_event) can read the event
/// payload.
///
/// Implemented for `web::Json<T>` and for `Result`, `Option`, `(R, StatusCode)` and
/// `Either` around such types: an `Err`, a `None` or a non-2xx status publishes nothing.
/// Implement it for your own responder types:
///
/// ```
/// use actix_web::{body::BoxBody, HttpRequest, HttpResponse, Responder};
/// use sse_core::{EventPayload, PayloadWriter};
///
/// #[derive(serde::Serialize)]
/// struct User { id: u64 }
///
/// struct Created(User);
///
/// impl Responder for Created {
///     type Body = BoxBody;
///     fn respond_to(self, _: &HttpRequest) -> HttpResponse {
///         HttpResponse::Created().json(&self.0)
///     }
/// }
///
/// impl EventPayload for Created {
///     fn write_payload(&self, out: PayloadWriter<'_>) {
///         out.serialize(&self.0);
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`#[emit_event]` cannot find an event payload in a handler that returns `{Self}`",
    label = "`#[emit_event]` needs to read the payload from this return type",
    note = "return `web::Json<T>` with `T: serde::Serialize`, possibly inside `Result<_, E>`, `Option<_>`, `(_, StatusCode)` or `Either<_, _>`",
    note = "`HttpResponse` and `impl Responder` hide their payload; for a responder type of your own, implement `sse_core::EventPayload` for it"
)]
pub trait EventPayload {
    /// Hands the payload to `out`, or returns without calling it when there is nothing to
    /// publish (an error, `None`, a non-success status).
    fn write_payload(&self, out: PayloadWriter<'_>);
}

/// Receives the payload of an event from an [`EventPayload`] implementation.
pub struct PayloadWriter<'a> {
    events: &'a [EventSpec<'a>],
}

impl PayloadWriter<'_> {
    /// Serializes `payload` once and publishes it as each of the handler's events.
    ///
    /// A payload that fails to serialize, or whose fields cannot fill a topic template, is
    /// logged and counted; the handler's response is not affected.
    pub fn serialize<T: Serialize + ?Sized>(self, payload: &T) {
        dispatch(self.events, payload);
    }
}

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

impl<T: Serialize> EventPayload for Json<T> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        out.serialize(&self.0);
    }
}

impl<T: EventPayload, E> EventPayload for Result<T, E> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        if let Ok(value) = self {
            value.write_payload(out);
        }
    }
}

impl<T: EventPayload> EventPayload for Option<T> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        if let Some(value) = self {
            value.write_payload(out);
        }
    }
}

/// Publishes only when the status is a success (2xx).
impl<T: EventPayload> EventPayload for (T, StatusCode) {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        if self.1.is_success() {
            self.0.write_payload(out);
        }
    }
}

impl<L: EventPayload, R: EventPayload> EventPayload for Either<L, R> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        match self {
            Either::Left(l) => l.write_payload(out),
            Either::Right(r) => r.write_payload(out),
        }
    }
}

/// Where events go in the current task or thread.
#[derive(Clone)]
pub(crate) enum Target {
    Broadcaster(Broadcaster),
    Capture(Arc<Mutex<Vec<CapturedEvent>>>),
}

tokio::task_local! {
    static SCOPE: Target;
}

thread_local! {
    /// The broadcaster registered by the `App` built on this (worker) thread.
    static WORKER_DEFAULT: RefCell<Option<Weak<Shared>>> = const { RefCell::new(None) };
}

pub(crate) fn scoped<F: Future>(target: Target, fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(target, fut)
}

/// Makes `events` the target of `#[emit_event]` on this thread. actix builds each worker's
/// `App` on the thread that then runs its handlers, so this is per `App` and worker.
pub(crate) fn register_worker_default(events: &Broadcaster) {
    WORKER_DEFAULT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(other) = slot.as_ref().and_then(Weak::upgrade) {
            if !Arc::ptr_eq(&other, &events.shared) && !other.is_closed() {
                tracing::warn!(
                    "two sse_core::Broadcasters were registered on one thread; `#[emit_event]` \
                     handlers here publish to the one registered last. Wrap calls in \
                     `Broadcaster::scope` to choose explicitly."
                );
            }
        }
        *slot = Some(Arc::downgrade(&events.shared));
    });
}

fn current_target() -> Option<Target> {
    SCOPE.try_with(Target::clone).ok().or_else(|| {
        WORKER_DEFAULT
            .with(|slot| slot.borrow().as_ref().and_then(Weak::upgrade))
            .map(|shared| Target::Broadcaster(Broadcaster { shared }))
    })
}

fn dispatch<T: Serialize + ?Sized>(events: &[EventSpec<'_>], payload: &T) {
    let names = || events.iter().map(|e| e.name).collect::<Vec<_>>();
    match current_target() {
        Some(Target::Broadcaster(broadcaster)) => {
            let counters = &broadcaster.shared.counters;
            // Serialized once for all of this handler's events.
            let json = match serde_json::to_string(payload) {
                Ok(json) => json,
                Err(err) => {
                    counters
                        .emit_failures
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    tracing::error!(events = ?names(), %err, "event payload could not be serialized; no event published");
                    return;
                }
            };
            // Read back as a value only when a topic template needs the payload's fields.
            let value = events
                .iter()
                .any(|e| e.topic.is_some_and(topic::has_fields))
                .then(|| serde_json::from_str::<Value>(&json).ok())
                .flatten();
            let origin = if events.iter().any(|e| e.to_others) {
                sender()
            } else {
                None
            };
            for event in events {
                let topic = match event.topic(value.as_ref()) {
                    Ok(topic) => topic,
                    Err(err) => {
                        counters.emit_failures.fetch_add(1, Ordering::Relaxed);
                        counters.topic_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            event = event.name,
                            template = event.topic,
                            %err,
                            "event not published: its topic template cannot be filled from the payload"
                        );
                        continue;
                    }
                };
                let route = Arc::new(Route {
                    topics: Box::new([topic.into()]),
                    private: event.private,
                    origin: origin.clone().filter(|_| event.to_others),
                    everyone: false,
                });
                if let Err(err) = broadcaster.publish_json(event.name, &json, route) {
                    counters.emit_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(event = event.name, %err, "event not published");
                }
            }
        }
        Some(Target::Capture(sink)) => {
            let value = match serde_json::to_value(payload) {
                Ok(value) => value,
                Err(err) => {
                    tracing::error!(events = ?names(), %err, "event payload could not be serialized; no event captured");
                    return;
                }
            };
            let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
            for event in events {
                match event.topic(Some(&value)) {
                    Ok(topic) => sink.push(CapturedEvent {
                        name: event.name.to_owned(),
                        payload: value.clone(),
                        topics: vec![topic],
                    }),
                    Err(err) => tracing::error!(
                        event = event.name,
                        template = event.topic,
                        %err,
                        "event not captured: its topic template cannot be filled from the payload"
                    ),
                }
            }
        }
        None => {
            tracing::error!(
                events = ?names(),
                "event not published: no sse_core::Broadcaster is registered for this handler; {}",
                crate::endpoint::REGISTER_HINT
            );
        }
    }
}

/// The client whose request is being handled, for `to_others`; warns once when the
/// middleware that knows it is missing.
fn sender() -> Option<Arc<str>> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !crate::client_id::middleware_active() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "an `#[emit_event(.., to_others)]` handler ran without the client id middleware, so \
             its event is echoed to the sender too; add \
             `.wrap(events.client_id_middleware())` to the `App`"
        );
    }
    crate::client_id::current()
}

/// Called by the code that `#[emit_event]` generates.
#[doc(hidden)]
pub fn emit<T: EventPayload + ?Sized>(events: &[EventSpec<'_>], output: &T) {
    output.write_payload(PayloadWriter { events });
}

impl Broadcaster {
    /// Runs `fut` with this broadcaster as the target of the `#[emit_event]` handlers it
    /// calls, overriding the one registered on the `App`. Useful in background tasks, tests and
    /// apps that register several broadcasters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use actix_web::web::Json;
    /// use sse_core::{emit_event, Broadcaster};
    ///
    /// #[emit_event("pinged")]
    /// async fn ping() -> Json<u32> {
    ///     Json(7)
    /// }
    ///
    /// let events = Broadcaster::new();
    /// events.scope(ping()).await;
    /// assert_eq!(events.stats().published, 1);
    /// # }
    /// ```
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        scoped(Target::Broadcaster(self.clone()), fut).await
    }
}
