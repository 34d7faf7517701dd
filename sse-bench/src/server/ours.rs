//! sse-core serving the benchmark routes, with the handlers written the way the README says.

use actix_web::{web, App, HttpResponse, HttpServer};
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

pub(super) fn server(
    args: &ServeArgs,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let mut builder = Broadcaster::builder()
        .history(args.history)
        .history_bytes(args.history_bytes)
        .keep_alive(args.keep_alive());
    if let Some(url) = &args.redis {
        builder = builder
            .redis(url, &args.redis_stream)
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
    });
    super::bind!(server, args)
}
