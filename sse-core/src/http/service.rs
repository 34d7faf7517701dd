//! The stream endpoint: App registration, the SSE response, and `Broadcaster` as an
//! extractor.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::{self, AcceptEncoding, Encoding, Header, HeaderValue};
use actix_web::{error, web, FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder};

use super::client;
use super::refusal::Refusal;
use super::request::StreamRequest;
use crate::emit::{register_worker_default, REGISTER_HINT};
use crate::fanout::{Broadcaster, EventStream};
use crate::wire::gzip::Coding;

impl Broadcaster {
    /// Registers this broadcaster on an `App`, for use with [`App::configure`]:
    ///
    /// - a `GET` endpoint at `path` that streams the events ([`Broadcaster::respond`]);
    /// - app data, so handlers can take a `Broadcaster` (or `web::Data<Broadcaster>`)
    ///   argument;
    /// - the broadcaster that `#[emit_event]` handlers of this `App` publish to;
    /// - the browser client, an ES module, at `{path}/client.js`, and its types at
    ///   `{path}/client.d.ts`.
    ///
    /// ```no_run
    /// use actix_web::{App, HttpServer};
    /// use sse_core::Broadcaster;
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let events = Broadcaster::new(); // once, shared by every worker
    /// let server = HttpServer::new({
    ///     let events = events.clone();
    ///     move || App::new().configure(events.service("/api/sse/stream"))
    /// })
    /// .disable_signals() // `serve` handles them: streams end first, then the server stops
    /// .bind(("127.0.0.1", 8080))?
    /// .run();
    /// events.serve(server).await
    /// # }
    /// ```
    ///
    /// It also serves the event contract, made from [`Catalogue::linked`](crate::contract::Catalogue::linked): an AsyncAPI 3.0
    /// document at `{path}/asyncapi.json` and TypeScript declarations at `{path}/events.d.ts`
    /// ([`Broadcaster::service_without_documents`] leaves them out).
    ///
    /// [`App::configure`]: actix_web::App::configure
    pub fn service(&self, path: &str) -> impl FnOnce(&mut web::ServiceConfig) {
        self.mount(path, true)
    }

    /// [`Broadcaster::service`] without `{path}/asyncapi.json` and `{path}/events.d.ts`, for
    /// services that do not publish their event contract.
    pub fn service_without_documents(&self, path: &str) -> impl FnOnce(&mut web::ServiceConfig) {
        self.mount(path, false)
    }

    fn mount(&self, path: &str, documents: bool) -> impl FnOnce(&mut web::ServiceConfig) {
        let events = self.clone();
        let path = path.to_owned();
        let security = match &self.shared.config().authorizer.0 {
            Some(authorizer) => authorizer.security_schemes(),
            None => serde_json::Map::new(),
        };
        move |cfg| {
            register_worker_default(&events);
            cfg.app_data(web::Data::new(events.clone()));
            cfg.route(
                &path,
                web::get().to(move |req: HttpRequest| {
                    let events = events.clone();
                    async move {
                        // A client resuming into an instance that has not read its engine's
                        // epoch yet (just started) would get a reset: it waits a moment.
                        if StreamRequest::resumes(&req, "lastEventId") {
                            events.shared.until_linked().await;
                        }
                        events.respond(&req)
                    }
                }),
            );
            let base = path.trim_end_matches('/');
            cfg.route(
                &format!("{base}/client.js"),
                web::get().to(client::client_js),
            );
            cfg.route(
                &format!("{base}/client.d.ts"),
                web::get().to(client::client_d_ts),
            );
            if documents {
                crate::contract::routes(cfg, base, security);
            }
        }
    }

    /// The SSE response for one request: resumes after the request's `Last-Event-ID` header
    /// (or its `lastEventId` query parameter, for clients that cannot set headers), then
    /// streams live events.
    ///
    /// Query parameters: `topic` (repeatable; a [`TopicSelector`](crate::TopicSelector); none means every public
    /// event), `client_id` (or the `X-SSE-Client-Id` header: events this client caused with
    /// `to_others` are not echoed to it), `lastEventId`. Refusals, each logged and counted in
    /// [`Stats`](crate::Stats): 400 for a malformed or too many selectors or a bad client id,
    /// 414 for an over-long query string, 401 for invalid or expired credentials or none
    /// where a [private topic](crate::BroadcasterBuilder::private_topics) is selected, 403
    /// for a private selector the credentials do not cover, 503 with `Retry-After` past the
    /// subscriber limits or during shutdown.
    ///
    /// Use it to mount the stream behind your own guards or extractors:
    ///
    /// ```
    /// use actix_web::{web, App, HttpRequest, HttpResponse};
    /// use sse_core::Broadcaster;
    ///
    /// async fn stream(req: HttpRequest, events: Broadcaster) -> HttpResponse {
    ///     events.respond(&req)
    /// }
    /// let events = Broadcaster::new();
    /// let app = App::new()
    ///     .app_data(web::Data::new(events.clone()))
    ///     .route("/events", web::get().to(stream));
    /// ```
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let coding = self.coding(req);
        match self.open(req, coding) {
            Ok(stream) => {
                let mut response = stream_response();
                if self.shared.config().compress {
                    response.insert_header((header::VARY, "accept-encoding"));
                }
                // Replaces `stream_response`'s identity for a gzip stream.
                let encoding = match coding {
                    Coding::Identity => "identity",
                    Coding::Gzip => "gzip",
                };
                response
                    .insert_header((header::CONTENT_ENCODING, HeaderValue::from_static(encoding)))
                    .streaming(stream)
            }
            Err(refusal) => refusal.into_response(),
        }
    }

    /// How to send the stream: gzip when the builder turned compression on and the client
    /// prefers it to identity (by the q-values of its `Accept-Encoding`); identity otherwise,
    /// also for a header that cannot be read.
    fn coding(&self, req: &HttpRequest) -> Coding {
        if !self.shared.config().compress {
            return Coding::Identity;
        }
        let supported = [Encoding::gzip(), Encoding::identity()];
        match AcceptEncoding::parse(req).map(|accepted| accepted.negotiate(supported.iter())) {
            Ok(Some(chosen)) if chosen == Encoding::gzip() => Coding::Gzip,
            _ => Coding::Identity,
        }
    }

    /// Reads the request, checks it against the authorizer and the limits, and opens its
    /// stream.
    fn open(&self, req: &HttpRequest, coding: Coding) -> Result<EventStream, Refusal> {
        let shared = &self.shared;
        let request = StreamRequest::parse(shared, req)?;
        let authorized = request.authorize(shared, req)?;
        let admission = StreamRequest::admit(shared, req)?;
        let expires_at = authorized.expires_at;
        let last_event_id = request.last_event_id;
        let filter = request.filter(authorized);
        EventStream::open(
            shared.clone(),
            last_event_id,
            filter,
            coding,
            Some(admission),
            expires_at,
        )
        .ok_or_else(Refusal::shutting_down)
    }
}

/// `Broadcaster` as a handler argument; fails with a message saying how to register it.
impl FromRequest for Broadcaster {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.app_data::<web::Data<Broadcaster>>() {
            Some(events) => Ok(events.get_ref().clone()),
            None => {
                tracing::error!(
                    path = req.path(),
                    "a handler asked for a sse_core::Broadcaster but none is registered: {}",
                    REGISTER_HINT
                );
                Err(error::ErrorInternalServerError(format!(
                    "no sse_core::Broadcaster is registered: {REGISTER_HINT}"
                )))
            }
        })
    }
}

/// The headers of an event stream response, before its body.
pub(crate) fn stream_response() -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        // `no-transform`: proxies must not compress or otherwise rework the stream.
        .insert_header((header::CACHE_CONTROL, "no-cache, no-transform"))
        .insert_header(("x-accel-buffering", "no"))
        // An explicit identity encoding makes actix's `Compress` middleware leave the
        // stream alone; it would otherwise buffer events inside the compressor.
        .insert_header((
            header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        ));
    response
}
