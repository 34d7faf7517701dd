//! An attribute whose path merely ends in `emit_event` belongs to someone else: it is left on
//! the handler untouched, not read as ours. (`rustfmt::` is a tool namespace, so rustc accepts
//! any attribute in it without a crate defining one.)
use actix_web::web;
use sse_core::emit_event;

#[emit_event("user_created")]
#[rustfmt::emit_event]
async fn handler() -> web::Json<u8> {
    web::Json(1)
}

#[sse_core::emit_event("user_updated")]
#[rustfmt::emit_event(not, our = "syntax")]
#[::sse_core::emit_event("user_touched")]
async fn several() -> web::Json<u8> {
    web::Json(1)
}

fn main() {
    let _ = (handler(), several());
}
