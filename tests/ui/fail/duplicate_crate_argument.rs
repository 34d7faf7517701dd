use actix_web::web;
use sse_core::emit_event;

#[emit_event("user_created", crate = "sse_core", crate = "sse_core")]
async fn handler() -> web::Json<u8> {
    web::Json(1)
}

fn main() {}
