use actix_web::web;
use sse_core::emit_event;

struct User {
    id: u64,
}

#[emit_event("user_updated")]
async fn handler() -> Result<web::Json<User>, actix_web::Error> {
    Ok(web::Json(User { id: 1 }))
}

fn main() {}
