use actix_web::{web, Responder};
use sse_core::emit_event;

#[emit_event("user_updated")]
async fn handler() -> impl Responder {
    web::Json(1)
}

fn main() {}
