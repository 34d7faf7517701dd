//! A Mercure hub on the broadcaster (feature `mercure`): Mercure publishers and subscribers
//! (Symfony, API Platform, Laravel, any `EventSource` on `/.well-known/mercure`) share one
//! stream of events with the application's own endpoint and `#[emit_event]` handlers.
//!
//! ```
//! use actix_web::App;
//! use sse_core::mercure::{Discovery, JwtKey, Mercure};
//! use sse_core::Broadcaster;
//!
//! let events = Broadcaster::new();
//! let hub = Mercure::new()
//!     .publisher_key(JwtKey::hs256(b"!ChangeThisMercureHubJWTSecretKey!"))
//!     .subscriber_key(JwtKey::hs256(b"!ChangeThisMercureHubJWTSecretKey!"))
//!     .anonymous(true)
//!     .base_iri("https://example.com/");
//! let app = App::new()
//!     .wrap(Discovery::new("/.well-known/mercure"))
//!     .configure(events.service("/events"))
//!     .configure(events.mercure(hub));
//! ```
//!
//! # The protocol
//!
//! As the 0.x hubs speak it (parameter names of the reference hub 0.14 and later):
//!
//! - **Subscribe**: `GET /.well-known/mercure?topic=<selector>` (repeatable; required), a
//!   selector being `*`, an exact topic, or a URI template ([mapping](#topics)). A token
//!   from `Authorization: Bearer`, the `authorization` query parameter or the
//!   `mercureAuthorization` cookie; its `mercure.subscribe` selectors say which private
//!   updates the subscriber gets. Without a token only when [`Mercure::anonymous`]. Resume
//!   with the `Last-Event-ID` header or the `lastEventID` query parameter (the header wins),
//!   or `earliest`; the response carries `Last-Event-ID`, the id of the last event then.
//! - **Publish**: `POST /.well-known/mercure`, a form of `topic` (repeatable, the first is
//!   canonical), `data`, `private`, `id`, `type`, `retry`, with a token whose
//!   `mercure.publish` selectors allow every topic of the update. The answer is 200
//!   `text/plain` with the update's id: the publisher's, or a new `urn:uuid:`. Refused
//!   without a token (401), with a claim that does not cover the topics (403), with a
//!   malformed form, topic or id (`#...`) (400), past [`Mercure::max_update_bytes`] (413);
//!   nothing is published then.
//! - **Discovery**: [`Discovery`] adds `Link: <hub>; rel="mercure"` to responses.
//!
//! # One stream of events
//!
//! An update is an event like any other: numbered, kept in the history, encoded once, and
//! delivered through the subscription index to the application's stream subscribers whose
//! selectors match its topics as well as to Mercure subscribers. Its `type` is the event name
//! (`message` without one), its `data` the text as given, and its `id:` field the id the
//! publisher chose, so `EventSource.lastEventId` is that id. Events of `#[emit_event]` reach
//! Mercure subscribers of their topics with their sse-core ids; private ones only those
//! whose `mercure.subscribe` claim allows one of their topics.
//!
//! # Topics
//!
//! A Mercure topic maps onto an sse-core topic: under the [base IRI](Mercure::base_iri), the
//! path after it (`https://example.com/books/1` is `books/1`); any other IRI whole, its
//! empty segments written `%` (`https://other.org/a` is `https:/%/other.org/a`). URI
//! templates are level 1: `{var}` as a whole `/`-separated segment, matching one non-empty
//! segment, as sse-core's `{name}` does; other expressions are refused with a reason.
//!
//! # Resuming and what it costs
//!
//! An update is numbered like every event (an sse-core [`EventId`](crate::EventId), or the
//! engine's position), and its publisher's id is kept beside that number: with the frame in
//! the history, and with an engine (Redis, NATS) in the entry, so every instance's frame
//! carries it. A `Last-Event-ID` is looked up among the publishers' ids of the local history
//! first, newest first (a scan of the history, under its lock, for each such resume: the
//! price of ids that have no order), then read as an sse-core id. Each frame carries one
//! more pointer. An id that is neither, or a publisher's id older than the local history
//! (it is not looked up in the engine), gets an `sse-reset` event, as on the stream
//! endpoint.
//!
//! # Not implemented
//!
//! The subscriptions API and its `active` events; CORS (serve the page from the hub's
//! origin, or add a CORS middleware); the 1.0 drafts' parameter names; templates beyond
//! level 1. With an engine, `earliest` starts with live events (engine positions have no
//! "before the oldest" to resume after).

mod discovery;
mod jwt;
mod publish;
mod subscribe;
mod topic;

use std::sync::Arc;

use actix_web::{web, HttpRequest};

pub use discovery::{Discovery, DiscoveryService};
pub use jwt::{JwtKey, COOKIE};

use crate::fanout::Broadcaster;
use topic::TopicMap;

/// Where a Mercure hub is served, as the protocol fixes it.
pub const PATH: &str = "/.well-known/mercure";

/// The settings of a Mercure hub, named as the reference hub names them; mount it with
/// [`Broadcaster::mercure`].
///
/// Without a publisher key nobody publishes; without a subscriber key only anonymous
/// subscribers (when allowed) subscribe.
#[derive(Clone, Debug)]
pub struct Mercure {
    settings: Arc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    publisher_key: Option<JwtKey>,
    subscriber_key: Option<JwtKey>,
    anonymous: bool,
    topics: TopicMap,
    max_update_bytes: usize,
    publish_origins: Vec<String>,
}

impl Default for Mercure {
    fn default() -> Self {
        Self::new()
    }
}

impl Mercure {
    /// A hub with no keys, no anonymous subscribers, no base IRI, and updates of at most
    /// 1 MiB.
    pub fn new() -> Self {
        Self {
            settings: Arc::new(Settings {
                publisher_key: None,
                subscriber_key: None,
                anonymous: false,
                topics: TopicMap::default(),
                max_update_bytes: 1 << 20,
                publish_origins: Vec::new(),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// The key of publishers' tokens (`publisher_jwt` of the reference hub).
    pub fn publisher_key(self, key: JwtKey) -> Self {
        self.edit(|s| s.publisher_key = Some(key))
    }

    /// The key of subscribers' tokens (`subscriber_jwt` of the reference hub).
    pub fn subscriber_key(self, key: JwtKey) -> Self {
        self.edit(|s| s.subscriber_key = Some(key))
    }

    /// Whether subscribers without a token are served (public updates only). Default: no.
    pub fn anonymous(self, allowed: bool) -> Self {
        self.edit(|s| s.anonymous = allowed)
    }

    /// The IRI under which Mercure topics are the application's topics: with
    /// `https://example.com/`, the Mercure topic `https://example.com/books/1` is the topic
    /// `books/1` of `#[emit_event]` handlers and the stream endpoint. See the module docs.
    pub fn base_iri(self, base: impl Into<String>) -> Self {
        let base = base.into();
        self.edit(|s| s.topics = TopicMap::new(Some(base)))
    }

    /// The largest publish body accepted, in bytes (413 past it). Default 1 MiB.
    pub fn max_update_bytes(self, bytes: usize) -> Self {
        self.edit(|s| s.max_update_bytes = bytes)
    }

    /// The origins from which a publisher may use the `mercureAuthorization` cookie
    /// (`publish_origins` of the reference hub; `*` for any). A token in the cookie is sent by
    /// the browser on its own, so without this a cookie never publishes.
    pub fn publish_origins<S: Into<String>>(self, origins: impl IntoIterator<Item = S>) -> Self {
        let origins = origins.into_iter().map(Into::into).collect();
        self.edit(|s| s.publish_origins = origins)
    }
}

impl Broadcaster {
    /// Serves a Mercure hub at [`PATH`] (`/.well-known/mercure`) on this broadcaster, for
    /// use with [`App::configure`](actix_web::App::configure): `GET` subscribes, `POST`
    /// publishes. Mount [`Broadcaster::service`] too for the application's own endpoint and
    /// `#[emit_event]`. See [`mercure`](crate::mercure).
    pub fn mercure(&self, hub: Mercure) -> impl FnOnce(&mut web::ServiceConfig) {
        let events = self.clone();
        move |cfg| {
            let (subscribe_events, subscribe_hub) = (events.clone(), hub.clone());
            cfg.route(
                PATH,
                web::get().to(move |req: HttpRequest| {
                    let response = subscribe::respond(&subscribe_events, &subscribe_hub, &req);
                    async move { response }
                }),
            );
            let hub = Arc::new(hub);
            cfg.route(
                PATH,
                web::post().to(move |req: HttpRequest, body: web::Payload| {
                    publish::handle(events.clone(), hub.clone(), req, body)
                }),
            );
        }
    }
}
