//! The actix-web side: the stream endpoint, App registration, extraction and shutdown.

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use actix_web::dev::{Payload, Server, ServerHandle};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{error, web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::admission::OverLimit;
use crate::client_id::{parse_client_id, CLIENT_ID_HEADER};
use crate::filter::Filter;
use crate::{AuthError, Broadcaster, EventStream, Grant, TopicSelector};

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
    /// Query parameters: `topic` (repeatable; a [`TopicSelector`]; none means every public
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
        match self.open(req) {
            Ok(stream) => HttpResponse::Ok()
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
            Err(refusal) => refusal.into_response(),
        }
    }

    /// Checks the request against the limits and the authorizer and opens its stream.
    fn open(&self, req: &HttpRequest) -> Result<EventStream, Refusal> {
        let shared = &self.shared;
        let config = &shared.config;
        let counters = &shared.counters;
        let refuse = |counter: &AtomicU64, status: StatusCode, message: String| {
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                status = status.as_u16(),
                peer = ?req.peer_addr(),
                %message,
                "sse stream request refused"
            );
            Refusal { status, message }
        };
        let bad =
            |message: String| refuse(&counters.bad_requests, StatusCode::BAD_REQUEST, message);

        let query = req.query_string();
        if query.len() > config.max_query_len {
            return Err(refuse(
                &counters.bad_requests,
                StatusCode::URI_TOO_LONG,
                format!(
                    "the query string is {} bytes; at most {} are accepted",
                    query.len(),
                    config.max_query_len
                ),
            ));
        }
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|err| bad(format!("unreadable query string: {err}")))?
            .into_inner();
        let mut selectors = Vec::new();
        let mut client_id = None;
        for (key, value) in &pairs {
            match key.as_str() {
                "topic" => {
                    if selectors.len() == config.max_selectors {
                        return Err(bad(format!(
                            "too many `topic` parameters: at most {} are accepted",
                            config.max_selectors
                        )));
                    }
                    let selector = TopicSelector::parse(value)
                        .map_err(|err| bad(format!("malformed topic selector: {err}")))?;
                    selectors.push(selector);
                }
                "client_id" => client_id = Some(value.as_bytes()),
                _ => {}
            }
        }
        let client_id = match req.headers().get(CLIENT_ID_HEADER) {
            Some(header) => Some(header.as_bytes()),
            None => client_id,
        };
        let client_id = match client_id {
            None => None,
            Some(raw) => Some(parse_client_id(raw).map_err(|reason| bad(reason.to_owned()))?),
        };

        let grant: Option<Grant> = match &config.authorizer.0 {
            None => None,
            Some(authorizer) => match authorizer.authorize(req) {
                Ok(grant) => grant,
                Err(AuthError::Forbidden(message)) => {
                    return Err(refuse(&counters.forbidden, StatusCode::FORBIDDEN, message))
                }
                Err(err) => {
                    return Err(refuse(
                        &counters.unauthorized,
                        StatusCode::UNAUTHORIZED,
                        err.to_string(),
                    ))
                }
            },
        };
        for selector in &selectors {
            if !config.private_topics.iter().any(|p| selector.is_within(p)) {
                continue;
            }
            match &grant {
                None => {
                    return Err(refuse(
                        &counters.unauthorized,
                        StatusCode::UNAUTHORIZED,
                        format!("topic `{selector}` is private: send credentials"),
                    ))
                }
                Some(grant) if !grant.topics.iter().any(|g| selector.is_within(g)) => {
                    return Err(refuse(
                        &counters.forbidden,
                        StatusCode::FORBIDDEN,
                        format!("your credentials do not allow topic `{selector}`"),
                    ))
                }
                Some(_) => {}
            }
        }
        let expires_at = match grant.as_ref().and_then(|g| g.expires_at) {
            None => None,
            Some(at) => match at.duration_since(SystemTime::now()) {
                Ok(left) => Some(tokio::time::Instant::now() + left),
                Err(_) => {
                    return Err(refuse(
                        &counters.unauthorized,
                        StatusCode::UNAUTHORIZED,
                        "the credentials have expired".to_owned(),
                    ))
                }
            },
        };

        let admission = shared
            .admit(req.peer_addr().map(|a| a.ip()))
            .map_err(|which| {
                let message = match which {
                    OverLimit::Total => "too many open event streams; try again later",
                    OverLimit::PerIp => "too many open event streams from your address",
                };
                refuse(
                    &counters.over_limit,
                    StatusCode::SERVICE_UNAVAILABLE,
                    message.to_owned(),
                )
            })?;
        let filter = Filter {
            selectors: (!selectors.is_empty()).then(|| selectors.into()),
            grants: grant.map(|g| g.topics.into()).unwrap_or_default(),
            client_id,
        };
        let last_event_id = last_event_id(req);
        EventStream::filtered(
            shared.clone(),
            last_event_id.as_deref(),
            filter,
            Some(admission),
            expires_at,
        )
        .ok_or_else(|| Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the event stream is shutting down".to_owned(),
        })
    }

    /// A middleware that makes the `X-SSE-Client-Id` header of each request known to the
    /// `#[emit_event(.., to_others)]` handlers it runs, so the client's own stream does not get
    /// the echo of its change. One line: `App::new().wrap(events.client_id_middleware())`.
    pub fn client_id_middleware(&self) -> crate::ClientIdMiddleware {
        crate::ClientIdMiddleware
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

/// Why a stream request was refused: a status and a message for the client.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            StatusCode::UNAUTHORIZED => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.message)
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
