//! A users CRUD service on SQLite or PostgreSQL whose page updates itself live over Server-Sent Events.
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use sse_core::Broadcaster;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sse_demo::db::connect("sqlite::memory:").await?;
//! // Once, shared by every worker; the history is the database's event log, which the
//! // handlers write their events to in their own transactions.
//! let events = Broadcaster::builder().event_log(&pool.event_log().await?).build();
//! let server = HttpServer::new({
//!     let events = events.clone();
//!     move || App::new().configure(sse_demo::app_config(pool.clone(), events.clone()))
//! })
//! .bind(("127.0.0.1", 0))?
//! .run();
//! events.serve(server).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `main.rs` adds configuration, logging, CORS, the login and [`presence`] around the same
//! [`app_config`].

pub mod db;
pub mod error;
pub mod login;
pub mod mercure;
pub mod observe;
pub mod presence;
pub mod public;
pub mod tls;
pub mod users;

use actix_cors::Cors;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{dev::RequestHead, web, HttpResponse};
use sse_core::Broadcaster;

/// Where browsers subscribe to the events.
pub const STREAM_PATH: &str = "/api/sse/stream";

/// Registers the page, the users API and the event stream, for `App::configure`.
///
/// Call it inside the `HttpServer::new` closure with clones of one pool and one broadcaster
/// made outside it.
pub fn app_config(pool: db::Db, events: Broadcaster) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(pool))
            .app_data(error::json_config())
            .app_data(error::path_config())
            .configure(events.service(STREAM_PATH))
            .route("/", web::get().to(index))
            .service(
                web::scope("/api/v1/users")
                    .route("", web::get().to(users::list))
                    .route("", web::post().to(users::create))
                    .route("/{id}", web::get().to(users::get))
                    .route("/{id}", web::put().to(users::update))
                    .route("/{id}", web::delete().to(users::delete))
                    .route("/{id}/email", web::put().to(users::update_email)),
            );
    }
}

/// Allows the listed origins (and the page's own, which browsers also label with `Origin`) to
/// call the API and open the stream.
pub fn cors(origins: &[String]) -> Cors {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok())
        .collect();
    Cors::default()
        .allowed_origin_fn(move |origin, req| allowed.contains(origin) || same_origin(origin, req))
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static("last-event-id"),
        ])
        // The snapshot id, so a page on another origin can subscribe from its snapshot.
        .expose_headers([header::HeaderName::from_static(
            sse_core::http::SNAPSHOT_ID_HEADER,
        )])
        .max_age(3600)
}

/// Whether `origin` (`http://host:port`) names the host the request was sent to.
fn same_origin(origin: &HeaderValue, req: &RequestHead) -> bool {
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("static/index.html"))
}
