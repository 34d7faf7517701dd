use actix_web::web;
use sse_core::emit_event;

#[derive(serde::Serialize)]
struct User {
    id: u64,
}

struct Order;

fn public(_: &Order) -> u64 {
    1
}

#[emit_event("user_updated", payload = public)]
async fn handler() -> web::Json<User> {
    web::Json(User { id: 1 })
}

fn main() {}
