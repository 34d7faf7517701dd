use actix_web::{http::StatusCode, web, CustomizeResponder, Responder};
use sse_core::emit_event;

#[emit_event("user_created")]
async fn handler() -> Result<CustomizeResponder<web::Json<u8>>, actix_web::Error> {
    Ok(web::Json(1).customize().with_status(StatusCode::CREATED))
}

fn main() {}
