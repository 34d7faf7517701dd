//! `#[emit_event]` above or below actix's route macros, and several events on one handler.
use actix_web::{post, put, web, App};
use sse_core::emit_event;

#[emit_event("user_created")]
#[post("/users")]
async fn above() -> web::Json<u32> {
    web::Json(1)
}

#[put("/users/{id}")]
#[emit_event("user_updated")]
#[emit_event("user_touched")]
async fn below(id: web::Path<u32>) -> web::Json<u32> {
    web::Json(id.into_inner())
}

fn main() {
    let _ = App::new().service(above).service(below);
}
