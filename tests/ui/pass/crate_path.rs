//! `crate = "..."` points the generated code at a re-exported `sse_core`.
use actix_web::web;

mod framework {
    pub mod events {
        pub use sse_core::*;
    }
}

#[framework::events::emit_event("user_created", crate = "framework::events")]
async fn handler() -> web::Json<u8> {
    web::Json(1)
}

fn main() {
    let _ = handler();
}
