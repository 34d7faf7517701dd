//! Topics, a private event, and a custom `Authorize` that grants each user their own topics.
//!
//! ```sh
//! cargo run -p sse-core --example topics_private
//! curl -N 'localhost:8080/events?topic=orders/*'                        # public: orders
//! curl -N 'localhost:8080/events?topic=users/42/*' -H 'x-user-id: 42'   # user 42's own
//! curl -N 'localhost:8080/events?topic=users/42/*'                      # 401: private
//! curl -X POST localhost:8080/users/42/orders/7/ship
//! ```

use actix_web::{web, App, HttpRequest, HttpServer};
use serde::Serialize;
use sse_core::{emit_event, error::AuthError, Authorize, Broadcaster, Grant, TopicSelector};

#[derive(Serialize)]
struct Order {
    id: u64,
    customer: u64,
}

/// Shipping publishes two events: a public one on `orders/7` for everybody watching orders,
/// and a private one on `users/42/orders/7` for customer 42 only.
#[emit_event("order_shipped", topic = "orders/{id}")]
#[emit_event("your_order_shipped", topic = "users/{customer}/orders/{id}", private)]
async fn ship(path: web::Path<(u64, u64)>) -> web::Json<Order> {
    let (customer, id) = path.into_inner();
    web::Json(Order { id, customer })
}

/// Trusts an `x-user-id` header set by an authenticating proxy in front of the app, and
/// grants that user the topics under `users/<id>/`.
struct ProxyUser;

impl Authorize for ProxyUser {
    fn authorize(&self, req: &HttpRequest) -> Result<Option<Grant>, AuthError> {
        let Some(user) = req.headers().get("x-user-id") else {
            return Ok(None); // anonymous: public events only
        };
        let user: u64 = (user.to_str().ok())
            .and_then(|user| user.parse().ok())
            .ok_or_else(|| AuthError::invalid("x-user-id must be a number"))?;
        // `parse`, not `literal`, because the grant needs its `*`; safe only because `user`
        // is a number. A grant from free text must use `TopicSelector::literal`, which no
        // `{x}` or `*` in the text can widen.
        let own = TopicSelector::parse(&format!("users/{user}/*"))
            .map_err(|err| AuthError::invalid(err.to_string()))?;
        Ok(Some(Grant::new([own])))
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let events = Broadcaster::builder()
        .authorizer(ProxyUser)
        // Asking for these without credentials covering them is refused (401/403) instead
        // of silently receiving nothing.
        .private_topics([TopicSelector::parse("users/*")?])
        .build();
    let server = HttpServer::new({
        let events = events.clone();
        move || {
            App::new()
                .configure(events.service("/events"))
                .route("/users/{customer}/orders/{id}/ship", web::post().to(ship))
        }
    })
    .disable_signals() // `serve` handles Ctrl-C / SIGTERM: streams end, then the server stops
    .h1_allow_half_closed(false) // a closed tab's stream ends at its EOF, not at a later write
    .on_connect(sse_core::http::no_delay) // each event leaves when written (TCP_NODELAY)
    .bind(("127.0.0.1", 8080))?
    .run();
    println!("streaming on http://127.0.0.1:8080/events?topic=...; Ctrl-C to stop");
    events.serve(server).await?;
    Ok(())
}
