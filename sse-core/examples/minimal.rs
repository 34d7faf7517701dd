//! One handler whose result every open stream sees.
//!
//! ```sh
//! cargo run -p sse-core --example minimal
//! curl -N localhost:8080/events                       # in one terminal
//! curl -X PUT localhost:8080/users/7 -d 'Ada'         # in another
//! ```

use actix_web::{web, App, HttpServer};
use serde::Serialize;
use sse_core::{emit_event, Broadcaster};

#[derive(Serialize)]
struct User {
    id: u64,
    name: String,
}

/// Renames a user; on success the stream carries `event: user_updated` with the JSON.
#[emit_event("user_updated")]
async fn rename(id: web::Path<u64>, name: String) -> actix_web::Result<web::Json<User>> {
    Ok(web::Json(User {
        id: id.into_inner(),
        name,
    }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().init();
    let events = Broadcaster::new(); // once, outside the closure: shared by all workers
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
    .bind(("127.0.0.1", 8080))?
    .run();
    println!("streaming on http://127.0.0.1:8080/events; Ctrl-C to stop");
    events.serve(server).await
}
