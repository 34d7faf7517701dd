use actix_web::HttpResponse;
use sse_core::emit_event;

fn public(_: &()) -> u64 {
    1
}

#[emit_event("user_updated", payload = public)]
async fn handler() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
