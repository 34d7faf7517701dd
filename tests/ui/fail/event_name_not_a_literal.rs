use actix_web::web;
use sse_core::emit_event;

const NAME: &str = "user_updated";

#[emit_event(NAME)]
async fn handler() -> web::Json<u8> {
    web::Json(1)
}

fn main() {}
