//! Several instances sharing one event stream through Redis (feature `redis`).
//!
//! ```sh
//! PORT=8080 cargo run -p sse-core --features redis --example redis
//! PORT=8081 cargo run -p sse-core --features redis --example redis   # a second instance
//! curl -N localhost:8081/events
//! curl -X PUT localhost:8080/users/7 -d 'Ada'   # published on one, seen on both
//! ```
//!
//! `REDIS_URL` defaults to `redis://127.0.0.1:6379`. The handler is the same as without
//! Redis: only the builder changes.

use actix_web::{web, App, HttpServer};
use serde::Serialize;
use sse_core::{emit_event, Broadcaster};

#[derive(Serialize)]
struct User {
    id: u64,
    name: String,
}

#[emit_event("user_updated", topic = "users/{id}")]
async fn rename(id: web::Path<u64>, name: String) -> actix_web::Result<web::Json<User>> {
    Ok(web::Json(User {
        id: id.into_inner(),
        name,
    }))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 8080,
    };
    // Publishing never waits for Redis: while it is down, events wait in the outbox.
    let events = Broadcaster::builder()
        .redis(&url, "sse-core-example:events")?
        .build();
    let server = HttpServer::new({
        let events = events.clone();
        move || {
            App::new()
                .configure(events.service("/events"))
                .route("/users/{id}", web::put().to(rename))
        }
    })
    .disable_signals() // `serve` handles Ctrl-C / SIGTERM: streams end, then the server stops
    .h1_allow_half_closed(false) // a closed tab's stream ends at its EOF, not at a later write
    .on_connect(sse_core::http::no_delay) // each event leaves when written (TCP_NODELAY)
    .bind(("127.0.0.1", port))?
    .run();
    println!("streaming on http://127.0.0.1:{port}/events (Redis at {url}); Ctrl-C to stop");
    events.serve(server).await?;
    Ok(())
}
