//! Seeing the demo run, for its operator only: with `--ops-bind`, a second listener serves
//! `GET /metrics` in the Prometheus text format and, with `--inspector`, a live page at
//! `/debug/sse` fed through the event stream itself on a private topic that only the
//! inspector's token may read. Nothing of it is served on the public address.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sse_core::observe::inspect;
use sse_core::{error::InvalidTopic, Broadcaster, Event, TopicSelector};

use crate::login::LoginKey;
use crate::STREAM_PATH;

/// The private topic of the inspector's updates.
pub const INSPECTOR_TOPIC: &str = "debug/sse";

/// The event name of an inspector update.
pub const INSPECTOR_EVENT: &str = "inspector";

/// Where the inspector page is served.
pub const INSPECTOR_PATH: &str = "/debug/sse";

/// How long an inspector token is valid.
const INSPECTOR_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often the inspector is updated while one is watching.
const INSPECTOR_EVERY: Duration = Duration::from_millis(500);

/// Bucket bounds, in seconds, of every `_seconds` histogram: from a millisecond (a write) to an
/// hour (a stream).
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// Command-line flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ObserveArgs {
    /// Serve `/metrics` (and `--inspector`) on this address only, for operators, like
    /// `127.0.0.1:9091`. Default: neither is served.
    #[arg(long, env = "SSE_OPS_BIND")]
    pub ops_bind: Option<SocketAddr>,

    /// Serve a live inspector at /debug/sse on `--ops-bind`: streams per topic, the last
    /// events, counters, refusals.
    #[arg(long, env = "SSE_INSPECTOR", requires = "ops_bind")]
    pub inspector: bool,
}

/// The metrics recorder, and the inspector when enabled.
#[derive(Clone)]
pub struct Observe {
    /// Without `--ops-bind` no recorder: nobody could read it.
    prometheus: Option<PrometheusHandle>,
    /// The inspector's page, its token inside: served to the operator, never logged or put in
    /// an address (an access log would keep it).
    inspector: Option<web::Bytes>,
}

/// The selector to add to the broadcaster's private topics.
pub fn inspector_topic() -> Result<TopicSelector, InvalidTopic> {
    TopicSelector::literal(INSPECTOR_TOPIC)
}

/// Installs the Prometheus recorder (once per process: later calls share it).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                Err(err) => {
                    // Another recorder is installed: render an empty one rather than fail.
                    tracing::warn!(%err, "metrics recorder not installed; /metrics stays empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            sse_core::observe::describe_metrics();
            let upkeep = handle.clone();
            // The exporter drains histogram samples only in its upkeep.
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
            handle
        })
        .clone()
}

impl ObserveArgs {
    /// With `--ops-bind`, installs the recorder and, with `--inspector`, starts feeding the
    /// inspector.
    pub fn start(&self, events: &Broadcaster, key: &LoginKey) -> Observe {
        let mut observe = Observe {
            prometheus: self.ops_bind.map(|_| prometheus()),
            inspector: None,
        };
        if self.inspector {
            inspect::enable();
            match inspector_topic() {
                Ok(topic) => inspect::watch(topic),
                Err(err) => tracing::error!(%err, "the inspector's topic is not valid"),
            }
            match key.token("inspector", &[INSPECTOR_TOPIC], INSPECTOR_TOKEN_LIFETIME) {
                // A token is base64url and dots: nothing to escape in the attribute.
                Ok(token) => {
                    let page = include_str!("static/inspector.html").replace("{{token}}", &token);
                    observe.inspector = Some(web::Bytes::from(page));
                }
                Err(err) => tracing::error!(%err, "cannot sign the inspector's token"),
            }
            let events = events.clone();
            std::thread::spawn(move || feed(&events));
        }
        observe
    }
}

impl Observe {
    /// Registers `/metrics` and, with `--inspector`, the inspector page and the event stream
    /// it reads, for `App::configure` of the operator's listener (`--ops-bind`) only.
    pub fn ops_config(&self, events: &Broadcaster) -> impl FnOnce(&mut web::ServiceConfig) {
        let (this, events) = (self.clone(), events.clone());
        move |cfg| {
            if let Some(handle) = this.prometheus {
                cfg.route(
                    "/metrics",
                    web::get().to(move || {
                        let text = handle.render();
                        async move {
                            HttpResponse::Ok()
                                .content_type("text/plain; version=0.0.4; charset=utf-8")
                                .body(text)
                        }
                    }),
                );
            }
            if let Some(page) = this.inspector {
                cfg.configure(events.service_without_documents(STREAM_PATH))
                    .route(
                        INSPECTOR_PATH,
                        web::get().to(move || inspector_page(page.clone())),
                    );
            }
        }
    }

    /// Whether the inspector is served.
    pub fn has_inspector(&self) -> bool {
        self.inspector.is_some()
    }
}

async fn inspector_page(page: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // It holds the token: kept by no cache.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page)
}

/// Publishes the inspector's view while an inspector is watching, until shutdown.
fn feed(events: &Broadcaster) {
    loop {
        std::thread::sleep(INSPECTOR_EVERY);
        if events.is_shut_down() {
            return;
        }
        if !watched() {
            continue;
        }
        let view = view(events, inspect::snapshot());
        let update = Event::new(INSPECTOR_EVENT).json(&view);
        if let Err(err) = events.publish_event(update.topic(INSPECTOR_TOPIC).private()) {
            tracing::debug!(%err, "inspector update not published");
        }
    }
}

/// Whether an inspector page is open: a stream with the inspector's token on its topic
/// (not any selection that merely contains its name).
fn watched() -> bool {
    inspector_topic().is_ok_and(|topic| inspect::watchers(&topic) > 0)
}

/// What the page shows; its own updates left out of the last events.
fn view(events: &Broadcaster, mut snapshot: inspect::Snapshot) -> serde_json::Value {
    snapshot.recent.retain(|e| e.name != INSPECTOR_EVENT);
    let s = events.stats();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    json!({
        "now_ms": now_ms,
        "streams": snapshot.streams,
        "other_streams": snapshot.other,
        "recent": snapshot.recent,
        "counters": {
            "subscribers": s.subscribers,
            "published": s.published,
            "resumed": s.resumed,
            "caught_up": s.caught_up,
            "resets": s.resets,
            "disconnects": s.disconnects,
            "emit_failures": s.emit_failures,
            "expired": s.expired,
            "outbox": s.engine.outbox,
        },
        "refusals": {
            "400": s.bad_requests,
            "401": s.unauthorized,
            "403": s.forbidden,
            "503": s.over_limit,
        },
    })
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::TestRequest;

    use super::*;

    #[actix_rt::test]
    async fn an_anonymous_selection_naming_the_inspector_topic_is_not_a_watcher() {
        inspect::enable();
        inspect::watch(inspector_topic().unwrap());
        let events = Broadcaster::builder()
            .private_topics([inspector_topic().unwrap()])
            .keep_alive(None)
            .build();
        // One selector, `x,debug/sse`: not within the private topic, so anyone may open it.
        let request = TestRequest::with_uri("/events?topic=x%2Cdebug%2Fsse").to_http_request();
        let stream = events.respond(&request);
        assert_eq!(stream.status(), StatusCode::OK);
        assert!(
            !watched(),
            "an anonymous stream counted as an inspector page"
        );
    }
}
