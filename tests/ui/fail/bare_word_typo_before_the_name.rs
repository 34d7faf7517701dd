use actix_web::web;
use sse_core::emit_event;

#[emit_event(privte, "user_updated")]
async fn handler() -> web::Json<u8> {
    web::Json(1)
}

fn main() {}
