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
//!   or `earliest` (from the oldest event kept: the history, or with an engine the store);
//!   the response carries `Last-Event-ID`, the id of the last event then.
//! - **Publish**: `POST /.well-known/mercure`, a form of `topic` (repeatable, the first is
//!   canonical), `data`, `private`, `id`, `type`, `retry`, with a token whose
//!   `mercure.publish` selectors allow every topic of the update. The answer is 200
//!   `text/plain` with the update's id: the publisher's, or a new `urn:uuid:`. Refused
//!   without a token (401), with a claim that does not cover the topics (403), with a
//!   malformed form, topic or id (`#...`) (400), past [`Mercure::max_update_bytes`] (413);
//!   nothing is published then.
//! - **Discovery**: [`Discovery`] adds `Link: <hub>; rel="mercure"` to responses.
//! - **Subscriptions** (off by default): the subscriptions API and its events
//!   ([below](#subscriptions)). **CORS** (off by default): [below](#cors).
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
//! empty segments written `%` (`https://other.org/a` is `https:/%/other.org/a`). In URI
//! templates, `{var}` as a whole `/`-separated segment matches one non-empty segment, as
//! sse-core's `{name}` does; `{+var}` as the last segment matches one or more; `{/var,...}`
//! (`{/a}{/b}` alike) matches up to that many segments, so the spec's
//! `/.well-known/mercure/subscriptions{/topic}{/subscriber}` is one selector. Other
//! expressions are refused with a reason.
//!
//! # Resuming and what it costs
//!
//! An update is numbered like every event (an sse-core [`EventId`](crate::EventId), or the
//! engine's position), and its publisher's id is kept beside that number: with the frame in
//! the history, and with an engine (Redis, NATS, the SQL log) in the entry, so every
//! instance's frame carries it. A `Last-Event-ID` is looked up among the publishers' ids of
//! the local history first, newest first (a scan of the history, under its lock, for each
//! such resume: the price of ids that have no order), then read as an sse-core id, then, on
//! the SQL event log alone, looked up in its table (an index of the schema), so a client
//! resumes from a publisher's id after a restart. Each frame carries one more pointer. An id
//! that is none of these, or a publisher's id older than the local history on Redis or NATS
//! (their streams have no index of such ids), gets an `sse-reset` event, as on the stream
//! endpoint.
//!
//! # Subscriptions
//!
//! With [`Mercure::subscriptions`], the hub serves the subscriptions API and publishes
//! subscription events, as the protocol defines them:
//!
//! - `GET /.well-known/mercure/subscriptions`, `.../subscriptions/{topic}` and
//!   `.../subscriptions/{topic}/{subscriber}` (each segment percent-encoded) answer JSON-LD
//!   (`application/ld+json`): a `Subscriptions` collection (`@context`, `id`, `type`,
//!   `lastEventID`, `subscriptions`) or one `Subscription` (`id`, `type`, `topic`,
//!   `subscriber`, `active`, the `payload` of the subscriber's `mercure.payload` claim, and
//!   `@context` and `lastEventID` when alone). A subscriber token is required (401), whose
//!   `mercure.subscribe` selectors cover the URL as requested, without the query (403): such
//!   as `/.well-known/mercure/subscriptions/{topic}/{subscriber}`, one selector for each of
//!   the three depths, or `*`. A segment that is empty, badly encoded or not UTF-8 gets 400.
//! - Each subscriber gets a `urn:uuid:` id per connection; each selector it subscribed with
//!   is one subscription, whose IRI is `/.well-known/mercure/subscriptions/{topic}/{subscriber}`
//!   (RFC 3986's unreserved characters kept, every other byte percent-encoded). When the
//!   subscriber connects, and again when its stream ends, the hub publishes a private update
//!   on that IRI with the subscription (`"active": true`, then `false`) as its data: it
//!   reaches subscribers that selected it and whose claim allows it. No publisher may publish
//!   on these topics (403), whatever its claim. Like any update, each is numbered and kept
//!   in the history (and in the engine's stream): subscribers that come and go often take
//!   room there from other events.
//!
//! The list is this instance's: the subscribers this process serves. With an engine
//! (Redis, NATS), each instance lists its own, while the subscription events, being updates,
//! reach subscribers on every instance.
//!
//! # CORS
//!
//! With [`Mercure::cors_origins`], a page of a listed origin (or any, with `*`) may use the
//! hub from another origin (actix's own `actix-cors` middleware): a preflight (`OPTIONS`
//! with `Access-Control-Request-Method`) gets 200 with the methods (`GET`, `POST`) and headers (`Authorization`, `Cache-Control`,
//! `Content-Type`, `Last-Event-ID`) the hub takes, and every response of the hub, the
//! stream included, gets `Access-Control-Allow-Origin` (the request's origin, since with
//! credentials a browser refuses `*`) and `Access-Control-Allow-Credentials: true`, so that
//! `EventSource` with `withCredentials` sends the `mercureAuthorization` cookie. A request
//! from another origin gets no CORS header (a preflight: 400). The hub's routes are one scope
//! with this middleware: do not wrap them in an application-wide CORS middleware too, or its
//! responses carry two sets of headers (mount the application's routes in a `web::scope("")`
//! with its own CORS, after the hub):
//!
//! ```
//! use actix_web::{web, App};
//! use sse_core::mercure::{JwtKey, Mercure};
//! use sse_core::Broadcaster;
//!
//! let events = Broadcaster::new();
//! let hub = Mercure::new()
//!     .subscriber_key(JwtKey::hs256(b"!ChangeThisMercureHubJWTSecretKey!"))
//!     .subscriptions(true)
//!     .cors_origins(["https://app.example.com"]);
//! let app = App::new()
//!     // First: everything under /.well-known/mercure is the hub's, with its own CORS.
//!     .configure(events.mercure(hub))
//!     // Then the application's routes, in a scope its own CORS middleware would wrap.
//!     .service(web::scope("").configure(events.service("/events")));
//! ```
//!
//! # Not implemented
//!
//! The 1.0 drafts' parameter names (and their `match_type` subscription URLs); template
//! operators other than `+` and `/`, modifiers, and a variable inside a segment; the
//! subscriptions API lists only this instance's subscribers.

mod cors;
mod discovery;
mod jwt;
mod publish;
mod subscribe;
mod subscriptions;
mod topic;

use std::sync::Arc;

use actix_web::{web, HttpRequest};

pub use discovery::{Discovery, DiscoveryService};
pub use jwt::{JwtKey, COOKIE};

use crate::fanout::Broadcaster;
use crate::http::request::StreamRequest;
use subscriptions::Registry;
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
    /// The subscribers of this instance, shared by every clone of the hub (one per worker).
    registry: Arc<Registry>,
}

#[derive(Clone, Debug)]
struct Settings {
    publisher_key: Option<JwtKey>,
    subscriber_key: Option<JwtKey>,
    anonymous: bool,
    topics: TopicMap,
    max_update_bytes: usize,
    publish_origins: Vec<String>,
    subscriptions: bool,
    cors_origins: Vec<String>,
}

impl Default for Mercure {
    fn default() -> Self {
        Self::new()
    }
}

impl Mercure {
    /// A hub with no keys, no anonymous subscribers, no base IRI, updates of at most 1 MiB,
    /// no subscriptions API and no CORS.
    pub fn new() -> Self {
        Self {
            settings: Arc::new(Settings {
                publisher_key: None,
                subscriber_key: None,
                anonymous: false,
                topics: TopicMap::default(),
                max_update_bytes: 1 << 20,
                publish_origins: Vec::new(),
                subscriptions: false,
                cors_origins: Vec::new(),
            }),
            registry: Arc::default(),
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

    /// Whether to serve the subscriptions API and publish subscription events (`subscriptions`
    /// of the reference hub). Default: no. See [Subscriptions](crate::mercure#subscriptions).
    pub fn subscriptions(self, enabled: bool) -> Self {
        self.edit(|s| s.subscriptions = enabled)
    }

    /// The origins whose pages may use the hub with CORS, credentials included (`cors_origins`
    /// of the reference hub; `*` for any). Default: none, and no CORS headers. See
    /// [CORS](crate::mercure#cors).
    pub fn cors_origins<S: Into<String>>(self, origins: impl IntoIterator<Item = S>) -> Self {
        let origins = origins.into_iter().map(Into::into).collect();
        self.edit(|s| s.cors_origins = origins)
    }
}

impl Broadcaster {
    /// Serves a Mercure hub at [`PATH`] (`/.well-known/mercure`) on this broadcaster, for
    /// use with [`App::configure`](actix_web::App::configure): `GET` subscribes, `POST`
    /// publishes, and with [`Mercure::subscriptions`] `GET {PATH}/subscriptions...` lists
    /// the subscriptions. Everything under [`PATH`] is the hub's (one scope). Mount
    /// [`Broadcaster::service`] too for the application's own endpoint and `#[emit_event]`.
    /// See [`mercure`](crate::mercure).
    pub fn mercure(&self, hub: Mercure) -> impl FnOnce(&mut web::ServiceConfig) {
        let events = self.clone();
        move |cfg| {
            let cors = cors::layer(&hub.settings.cors_origins);
            let hub = Arc::new(hub);
            let (subscribe_events, subscribe_hub) = (events.clone(), hub.clone());
            let (publish_events, publish_hub) = (events.clone(), hub.clone());
            let mut scope = web::scope(PATH)
                .route(
                    "",
                    web::get().to(move |req: HttpRequest| {
                        let (events, hub) = (subscribe_events.clone(), subscribe_hub.clone());
                        async move {
                            // As on the stream endpoint: a resume into a just-started instance
                            // waits for it to read its engine's epoch.
                            if StreamRequest::resumes(&req, "lastEventID") {
                                events.shared.until_linked().await;
                            }
                            subscribe::respond(&events, &hub, &req).await
                        }
                    }),
                )
                .route(
                    "",
                    web::post().to(move |req: HttpRequest, body: web::Payload| {
                        publish::handle(publish_events.clone(), publish_hub.clone(), req, body)
                    }),
                );
            if hub.settings.subscriptions {
                let list = move |req: HttpRequest| {
                    let response = subscriptions::respond(&events, &hub, &req);
                    async move { response }
                };
                // The segments are read from the path as sent, percent-encoded.
                scope = scope
                    .route("/subscriptions", web::get().to(list.clone()))
                    .route("/subscriptions/{rest:.*}", web::get().to(list));
            }
            cfg.service(scope.wrap(cors));
        }
    }
}
