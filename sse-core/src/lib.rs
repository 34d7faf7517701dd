//! Server-Sent Events for actix-web: annotate a handler, and every browser watching sees the
//! change the moment it succeeds.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use serde::Serialize;
//! use sse_core::{emit_event, Broadcaster};
//!
//! #[derive(Serialize)]
//! struct User { id: u64, name: String }
//!
//! #[emit_event("user_updated")]
//! async fn rename(path: web::Path<u64>, name: String) -> actix_web::Result<web::Json<User>> {
//!     Ok(web::Json(User { id: path.into_inner(), name }))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let events = Broadcaster::new(); // once, outside the closure: shared by all workers
//!     let server = HttpServer::new({
//!         let events = events.clone();
//!         move || {
//!             App::new()
//!                 .configure(events.service("/api/sse/stream"))
//!                 .route("/users/{id}", web::put().to(rename))
//!         }
//!     })
//!     .disable_signals() // `serve` handles Ctrl-C / SIGTERM: streams end, then the server stops
//!     .h1_allow_half_closed(false) // a closed tab's stream ends at its EOF, not at a later write
//!     .on_connect(sse_core::http::no_delay) // each event leaves when written (TCP_NODELAY)
//!     .bind(("127.0.0.1", 8080))?
//!     .run();
//!     events.serve(server).await
//! }
//! ```
//!
//! In the browser:
//!
//! ```js
//! const source = new EventSource("/api/sse/stream");
//! source.addEventListener("user_updated", (e) => console.log(JSON.parse(e.data)));
//! ```
//!
//! # What happens to an event
//!
//! The payload is serialized once and encoded once into a complete SSE frame
//! (`id:`, `event:`, `data:` lines); every subscriber gets the same bytes. Code with no
//! handler to annotate publishes with [`Broadcaster::publish`], or builds an [`Event`] (topics,
//! privacy, text data) for [`Broadcaster::publish_event`]. Nothing is dropped silently: see
//! [`Broadcaster::stats`].
//!
//! # Resuming
//!
//! Every event has an [`EventId`]; the browser sends the last one it saw as `Last-Event-ID`
//! when it reconnects, and the stream resumes right after it: the events it missed, in order,
//! once each, then live ones. A bounded history (see [`BroadcasterBuilder::history`]) serves
//! this and subscribers that fell behind; with an [engine], any instance answers from the
//! shared stream.
//!
//! # Resets
//!
//! When what a client missed is gone (trimmed, from another run, or its id is not one of
//! ours), it gets a [`RESET_EVENT`] instead, with a [`ResetReason`], and should refetch its
//! state. A reset is never silent and never a 500: each is counted by reason
//! ([`ResetReason::label`]).
//!
//! ```js
//! source.addEventListener("sse-reset", () => refetchEverything());
//! ```
//!
//! # Topics and private events
//!
//! Every event has topics (by default its name); a client picks them with
//! `?topic=<selector>` (see [`TopicSelector`]), and gets every public event without one.
//! `private` events reach only subscribers whose credentials, checked by the
//! [`Authorize`] set on the builder (such as `auth::JwtAuth`, feature `jwt`), allow one of
//! their topics, on replay and catch-up too. Each subscriber only looks at an event's topics
//! to skip it: frames are still encoded once for all.
//!
//! ```
//! use actix_web::web::Json;
//! use sse_core::emit_event;
//!
//! #[derive(serde::Serialize)]
//! struct Order { id: u64, customer: u64 }
//!
//! #[emit_event("order_shipped", topic = "customers/{customer}/orders/{id}", private)]
//! async fn ship() -> Json<Order> {
//!     Json(Order { id: 7, customer: 42 })
//! }
//! ```
//!
//! # Engines: several instances
//!
//! With the `redis` feature, `Broadcaster::builder().redis(url, stream)?` shares one event
//! stream among server instances through a Redis stream; with the `nats` feature, `.nats(url,
//! stream)?` does the same through a NATS JetStream stream. An event published on any instance
//! reaches the subscribers of all, with the same ids, and a client resumes with its
//! `Last-Event-ID` on any instance. Publishing never waits for the engine; an outbox bridges
//! outages, and subscribers get a reset if it overflows. Handlers and `#[emit_event]` do not
//! change. See [`engine`].
//!
//! # Shutdown
//!
//! [`Broadcaster::serve`] runs the actix server: on SIGINT or SIGTERM it ends every stream
//! (clients reconnect elsewhere and resume), stops the server, and waits up to the
//! [flush timeout](BroadcasterBuilder::flush_timeout) for events still queued for the engine.
//! [`Broadcaster::stop_server`] does the same on demand; [`Broadcaster::shutdown`] ends the
//! streams alone. Build the server with `disable_signals()` so that `serve` handles them.
//!
//! # Modules
//!
//! The root holds what every application uses. [`http`] is the actix-web side beyond
//! [`Broadcaster::service`] (middlewares, proxies), [`auth`] who may see private events,
//! [`engine`] the shared stores, [`contract`] the catalogue of events and the AsyncAPI and
//! TypeScript documents, [`observe`] metrics and the inspector, [`testing`] what tests use,
//! [`error`] every error type, [`topic`] and [`wire`] the rules of topics and frames.

#![cfg_attr(docsrs, feature(doc_cfg))]

// Layers, each depending only on those above it:
// error -> wire -> topic -> engine -> fanout -> {http, emit, contract}; auth -> http.
// `observe` stands beside them all.
pub mod auth;
pub mod contract;
mod emit;
pub mod engine;
pub mod error;
mod fanout;
pub mod http;
#[cfg(feature = "mercure")]
#[cfg_attr(docsrs, doc(cfg(feature = "mercure")))]
pub mod mercure;
pub mod observe;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub mod sql {
    //! The event log in the application's own database (features `sqlite`, `postgres`):
    //! events written in the transaction of their change (`#[emit_event(..,
    //! transactional)]` with a [`Tx`]), so that an event exists if and only if its change
    //! committed, kept across restarts and followed by every instance on the database.
    pub use crate::engine::sql::{
        Connection, Database, EventLog, Tx, TxConn, POSTGRES_SCHEMA, SQLITE_SCHEMA,
    };
    pub use crate::error::{EventLogError, TxError};
}
pub mod testing;
pub mod topic;
pub mod wire;

pub use crate::auth::{Authorize, Grant};
pub use crate::emit::{EventPayload, PayloadWriter};
pub use crate::fanout::{
    Broadcaster, BroadcasterBuilder, Event, EventStream, PresenceChanges, Stats,
};
pub use crate::topic::TopicSelector;
pub use crate::wire::{EventId, ResetReason, RESET_EVENT};

/// Publishes the handler's successful result as a named SSE event.
///
/// ```
/// use actix_web::web;
/// use sse_core::emit_event;
///
/// #[derive(serde::Serialize)]
/// struct User { id: u64 }
///
/// #[emit_event("user_created")]
/// async fn create_user() -> Result<web::Json<User>, actix_web::Error> {
///     Ok(web::Json(User { id: 1 }))
/// }
/// ```
///
/// When the handler returns, its value is inspected through [`EventPayload`]: an `Ok`, a
/// `Some` or a 2xx status holding `web::Json<T>` publishes `T`, serialized once, as the event
/// named by the attribute, to the broadcaster registered with [`Broadcaster::service`]; an
/// error publishes nothing. The handler's signature, response and other attributes are
/// unchanged, so it can still be called directly (see [`testing::capture`]).
///
/// Several `#[emit_event]` attributes on one handler publish one event each, in the order
/// written. The attribute composes with actix's route macros in either order.
///
/// Optional arguments, after the name:
///
/// - `topic = "users/{id}"`: the event's topic, filled from the serialized payload (`{a.b}`
///   for a nested field; the value must be a string without `/`, a number or a boolean).
///   Default: the event name. Subscribers choose topics with `?topic=` ([`TopicSelector`]).
/// - `private`: only for subscribers authorized for the topic (see [`Authorize`]).
/// - `to_others`: not echoed to the stream of the client that made the request (its
///   `X-SSE-Client-Id` header, read by [`http::ClientIdMiddleware`]).
///
/// ```
/// # use actix_web::web;
/// # use sse_core::emit_event;
/// # #[derive(serde::Serialize)] struct User { id: u64 }
/// #[emit_event("user_updated", topic = "users/{id}", to_others)]
/// async fn update() -> web::Json<User> {
///     web::Json(User { id: 42 })
/// }
/// ```
///
/// Delivery trouble never changes the response: a payload that fails to serialize, a topic
/// template naming a field the payload lacks, or a missing broadcaster, is logged with
/// `tracing` and counted in [`Stats::emit_failures`]; that event is not published.
#[cfg(feature = "macros")]
pub use sse_macros::emit_event;

/// The README's complete examples, compiled and run as doc tests so that they cannot drift.
/// Sketches there are fenced as `rs`, which GitHub highlights and rustdoc does not test
/// (`ignore` would not do: CI runs the tests with `--include-ignored`).
#[cfg(all(doctest, feature = "macros"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Not public API: used by the code `#[emit_event]` generates.
#[doc(hidden)]
pub mod __private {
    pub use crate::contract::probe::{
        projected, ByReturnSchema, ByReturnType, ByReturnUnknown, BySchema, ByType, Probe,
        ReturnProbe,
    };
    pub use crate::contract::{PayloadInfo, Registration};
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub use crate::emit::{collect, commit, tx_handle, Collected, TxOutcome};
    pub use crate::emit::{emit, emit_with, EventSpec, TypedPayload};
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub use crate::engine::sql::TxHandle;
    pub use inventory;

    /// Whether `flags` (the `stringify!`ed flags of `declare_event!`) has `flag`; a flag we
    /// do not know fails the build, in a constant.
    pub const fn has_flag(flags: &[&str], flag: &str) -> bool {
        let mut i = 0;
        let mut found = false;
        while i < flags.len() {
            let f = flags[i].as_bytes();
            if !eq(f, b"private") && !eq(f, b"to_others") {
                panic!("`declare_event!` flags are `private` and `to_others`");
            }
            if eq(f, flag.as_bytes()) {
                found = true;
            }
            i += 1;
        }
        found
    }

    const fn eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Registers one event in the catalogue.
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __register_event {
        ($($field:ident: $value:expr),* $(,)?) => {
            $crate::__private::inventory::submit! {
                $crate::__private::Registration { $($field: $value),* }
            }
        };
    }
}

/// Declares an event that code publishes with [`Broadcaster::publish`] and friends, so that
/// the [`Catalogue`](contract::Catalogue) (and the AsyncAPI and TypeScript documents made from it) lists it too.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct LogLine { level: String, text: String }
///
/// sse_core::declare_event!("log_line", payload = LogLine, topic = "logs/{level}");
/// sse_core::declare_event!("audit", payload = LogLine, private);
/// ```
///
/// After the name and the payload type: `topic = "template"`, then the flags `private` and
/// `to_others`, as for `#[emit_event]`. The name and template are checked by
/// [`testing::check_catalogue`], not at compile time.
#[macro_export]
macro_rules! declare_event {
    ($name:literal, payload = $payload:ty, topic = $topic:literal $(, $flag:ident)* $(,)?) => {
        $crate::__declare_event!($name, $payload, ::core::option::Option::Some($topic), $($flag)*);
    };
    ($name:literal, payload = $payload:ty $(, $flag:ident)* $(,)?) => {
        $crate::__declare_event!($name, $payload, ::core::option::Option::None, $($flag)*);
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __declare_event {
    ($name:literal, $payload:ty, $topic:expr, $($flag:ident)*) => {
        const _: () = {
            fn payload_info() -> $crate::__private::PayloadInfo {
                #[allow(unused_imports)]
                use $crate::__private::{BySchema as _, ByType as _};
                (&&$crate::__private::Probe::<$payload>::new()).payload_info()
            }
            $crate::__register_event! {
                name: $name,
                topic: $topic,
                private: $crate::__private::has_flag(&[$(stringify!($flag)),*], "private"),
                to_others: $crate::__private::has_flag(&[$(stringify!($flag)),*], "to_others"),
                origin: module_path!(),
                file: file!(),
                line: line!(),
                column: column!(),
                payload: payload_info,
            }
        };
    };
}
