//! sse-core serving the benchmark routes, with the handlers written the way the README says.

use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sse_core::Broadcaster;

use super::{ServeArgs, Tick, UserUpdate};

#[sse_core::emit_event("tick")]
async fn publish(body: web::Json<Tick>) -> web::Json<Tick> {
    body
}

/// The `targeted` preset's route: each event goes to the one subscriber of `users/{uid}`.
#[sse_core::emit_event("user_updated", topic = "users/{uid}")]
async fn update_user(body: web::Json<UserUpdate>) -> web::Json<UserUpdate> {
    body
}

async fn stats(events: Broadcaster) -> HttpResponse {
    let s = events.stats();
    HttpResponse::Ok().json(serde_json::json!({
        "subscribers": s.subscribers,
        "published": s.published,
        "resumed": s.resumed,
        "caught_up": s.caught_up,
        "resets": s.resets,
        "disconnects": s.disconnects,
        "emit_failures": s.emit_failures,
        "last_event_id": events.last_event_id().to_string(),
    }))
}

/// Installs a Prometheus recorder, as an application serving `/metrics` would, and returns
/// the exposition's handle.
fn install_metrics() -> std::io::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(std::io::Error::other)?;
    sse_core::observe::describe_metrics();
    let upkeep = handle.clone();
    // The exporter drains histogram samples only in its upkeep.
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        upkeep.run_upkeep();
    });
    Ok(handle)
}

/// With `metrics`, a Prometheus recorder gets everything sse-core reports, served at
/// `/metrics`; without, sse-core's metric calls find no recorder.
pub(super) fn server(
    args: &ServeArgs,
    metrics: bool,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    serve_with(args, metrics, false)
}

/// The same server with `compress(true)`: gzip streams for clients that ask.
pub(super) fn server_compressed(
    args: &ServeArgs,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    serve_with(args, false, true)
}

/// The same server on the SQL event log in PostgreSQL (`--postgres`), relayed into Redis or
/// NATS when those are given too.
pub(super) async fn server_on_postgres(
    args: &ServeArgs,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let url = args.postgres.as_deref().unwrap_or_default();
    let log = crate::tx::open_log(url, args.postgres_schema.as_deref())
        .await
        .map_err(std::io::Error::other)?;
    serve_on(args, false, false, Some(&log))
}

fn serve_with(
    args: &ServeArgs,
    metrics: bool,
    compress: bool,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    serve_on(args, metrics, compress, None)
}

fn serve_on(
    args: &ServeArgs,
    metrics: bool,
    compress: bool,
    log: Option<&sse_core::sql::EventLog>,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let prometheus = metrics.then(install_metrics).transpose()?;
    let mut builder = Broadcaster::builder();
    if let Some(log) = log {
        builder = builder.event_log(log);
    }
    let mut builder = builder
        .history(args.history)
        .history_bytes(args.history_bytes)
        .keep_alive(args.keep_alive())
        .compress(compress);
    if let Some(url) = &args.redis {
        builder = builder
            .redis(url, &args.redis_stream)
            .map_err(std::io::Error::other)?;
    }
    if let Some(url) = &args.nats {
        builder = builder
            .nats(url, &args.nats_stream)
            .map_err(std::io::Error::other)?;
    }
    let events = builder.build();
    let server = HttpServer::new(move || {
        App::new()
            .configure(events.service("/events"))
            .app_data(super::json_config())
            .route("/publish", web::post().to(publish))
            .route("/users", web::post().to(update_user))
            .route("/stats", web::get().to(stats))
            .configure(|cfg| {
                if let Some(handle) = prometheus.clone() {
                    cfg.route(
                        "/metrics",
                        web::get().to(move || {
                            let text = handle.render();
                            async move { HttpResponse::Ok().body(text) }
                        }),
                    );
                }
            })
    })
    // As the README advises: each event sent when written, not held by Nagle's algorithm.
    .on_connect(sse_core::http::no_delay);
    super::bind!(server, args)
}
