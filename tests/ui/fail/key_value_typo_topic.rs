use actix_web::web;
use sse_core::emit_event;

#[emit_event("user_updated", topics = "users/{id}")]
async fn handler() -> web::Json<u8> {
    web::Json(1)
}

fn main() {}
