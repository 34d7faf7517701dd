//! After a macro error the function is still emitted, so its callers type-check and only the
//! real mistake is reported.
use actix_web::web;
use sse_core::emit_event;

#[emit_event("")]
async fn handler() -> web::Json<u8> {
    web::Json(1)
}

async fn caller() -> u8 {
    handler().await.into_inner()
}

fn main() {
    let _ = caller();
}
