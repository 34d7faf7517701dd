//! The actix-web side: the stream endpoint, App registration, extraction and shutdown.

use std::future::{ready, Ready};

use actix_web::dev::{Payload, Server, ServerHandle};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{error, web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::{Broadcaster, EventStream};

/// What to add to an `App` when no broadcaster was registered; shown in logs and error bodies.
pub(crate) const REGISTER_HINT: &str =
    "add `.configure(events.service(\"/events\"))` to your `App` (with `events` a \
     `sse_core::Broadcaster` built once, before `HttpServer::new`)";

impl Broadcaster {
    /// Registers this broadcaster on an `App`, for use with [`App::configure`]:
    ///
    /// - a `GET` endpoint at `path` that streams the events ([`Broadcaster::respond`]);
    /// - app data, so handlers can take a `Broadcaster` (or `web::Data<Broadcaster>`)
    ///   argument;
    /// - the broadcaster that `#[emit_event]` handlers of this `App` publish to.
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
    /// [`App::configure`]: actix_web::App::configure
    pub fn service(&self, path: &str) -> impl FnOnce(&mut web::ServiceConfig) {
        let events = self.clone();
        let path = path.to_owned();
        move |cfg| {
            crate::emit::register_worker_default(&events);
            cfg.app_data(web::Data::new(events.clone()));
            cfg.route(
                &path,
                web::get().to(move |req: HttpRequest| {
                    let events = events.clone();
                    async move { events.respond(&req) }
                }),
            );
        }
    }

    /// The SSE response for one request: resumes after the request's `Last-Event-ID` header
    /// (or its `lastEventId` query parameter, for clients that cannot set headers), then
    /// streams live events.
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
        let last_event_id = last_event_id(req);
        match self.subscribe(last_event_id.as_deref()) {
            Some(stream) => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "text/event-stream"))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .insert_header(("x-accel-buffering", "no"))
                // An explicit identity encoding makes actix's `Compress` middleware leave the
                // stream alone; it would otherwise buffer events inside the compressor.
                .insert_header((
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static("identity"),
                ))
                .streaming(stream),
            None => HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .body("the event stream is shutting down"),
        }
    }

    /// Opens a stream of encoded frames resuming after `last_event_id`, or `None` once the
    /// broadcaster is shut down. [`Broadcaster::respond`] wraps it in a response.
    pub fn subscribe(&self, last_event_id: Option<&str>) -> Option<EventStream> {
        EventStream::new(self.shared.clone(), last_event_id)
    }

    /// Runs `server` until it stops. On SIGINT (Ctrl-C) or SIGTERM it first ends every open
    /// stream, then asks the server for a graceful stop, so the shutdown finishes at once
    /// instead of waiting `shutdown_timeout` for streams that never end by themselves.
    ///
    /// Build the server with [`HttpServer::disable_signals`] so that the streams are always
    /// ended before actix starts draining; with actix's own signal handling left on, both
    /// react to the signal and the shutdown may take up to about a second longer (actix
    /// re-checks open connections once a second).
    ///
    /// [`HttpServer::disable_signals`]: actix_web::HttpServer::disable_signals
    pub async fn serve(&self, server: Server) -> std::io::Result<()> {
        let events = self.clone();
        let handle = server.handle();
        let watcher = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received; closing event streams");
            events.stop_server(&handle, true).await;
        });
        let result = server.await;
        watcher.abort();
        result
    }

    /// Ends every open stream, then stops the server (see [`ServerHandle::stop`]).
    pub async fn stop_server(&self, server: &ServerHandle, graceful: bool) {
        self.shutdown();
        server.stop(graceful).await;
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

#[derive(Deserialize)]
struct StreamQuery {
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// The id to resume after. The header wins: a browser sends it on every reconnect, while a
/// query parameter stays as it was when the page opened the stream. Anything unreadable is
/// passed on as it is, to be answered with a reset.
fn last_event_id(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get("last-event-id") {
        let value = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
        if !value.is_empty() {
            return Some(value);
        }
    }
    if !req.query_string().contains("lastEventId") {
        return None;
    }
    match web::Query::<StreamQuery>::from_query(req.query_string()) {
        Ok(q) => q
            .into_inner()
            .last_event_id
            .filter(|v| !v.trim().is_empty()),
        Err(err) => {
            tracing::debug!(%err, "unreadable lastEventId query parameter");
            Some(String::from("\u{fffd}"))
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C closes streams");
                ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

/// Resolves on Ctrl-C; never, if the signal cannot be listened for.
async fn ctrl_c() {
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::warn!(%err, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
}
