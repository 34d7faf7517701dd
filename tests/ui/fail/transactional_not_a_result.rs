use actix_web::web::Json;
use sse_core::emit_event;
use sse_core::sql::Tx;

#[emit_event("note_created", transactional)]
async fn create(tx: Tx) -> Json<u32> {
    let _ = tx;
    Json(1)
}

fn main() {}
