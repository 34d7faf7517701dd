use actix_web::HttpResponse;
use sse_core::emit_event;

#[emit_event("user_updated")]
async fn handler() -> Result<HttpResponse, actix_web::Error> {
    Ok(HttpResponse::Ok().json(1))
}

fn main() {}
