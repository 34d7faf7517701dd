//! sse-core serving the benchmark routes, with the handler written the way the README says.

use actix_web::{web, App, HttpResponse, HttpServer};
use sse_core::Broadcaster;

use super::{ServeArgs, Tick};

#[sse_core::emit_event("tick")]
async fn publish(body: web::Json<Tick>) -> web::Json<Tick> {
    body
}

async fn stats(events: Broadcaster) -> HttpResponse {
    let s = events.stats();
    HttpResponse::Ok().json(serde_json::json!({
        "subscribers": s.subscribers,
        "published": s.published,
        "caught_up": s.caught_up,
        "resets": s.resets,
        "disconnects": s.disconnects,
        "emit_failures": s.emit_failures,
    }))
}

pub(super) fn server(
    args: &ServeArgs,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let events = Broadcaster::builder()
        .history(args.history)
        .history_bytes(args.history_bytes)
        .keep_alive(args.keep_alive())
        .build();
    let server = HttpServer::new(move || {
        App::new()
            .configure(events.service("/events"))
            .app_data(super::json_config())
            .route("/publish", web::post().to(publish))
            .route("/stats", web::get().to(stats))
    });
    super::bind!(server, args)
}
