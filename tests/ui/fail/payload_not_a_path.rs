use actix_web::web;
use sse_core::emit_event;

#[derive(serde::Serialize)]
struct User {
    id: u64,
}

#[emit_event("user_updated", payload = |u: &User| u.id)]
async fn handler() -> web::Json<User> {
    web::Json(User { id: 1 })
}

fn main() {}
