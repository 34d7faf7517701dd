use actix_web::web;
use sse_core::emit_event;

#[derive(serde::Serialize)]
struct User {
    id: u64,
}

fn public(user: User) -> u64 {
    user.id
}

#[emit_event("user_updated", payload = public)]
async fn handler() -> web::Json<User> {
    web::Json(User { id: 1 })
}

fn main() {}
