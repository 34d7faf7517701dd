use actix_web::web::Json;
use sse_core::emit_event;
use sse_core::sql::TxError;

#[emit_event("note_created", transactional)]
async fn create() -> Result<Json<u32>, TxError> {
    Ok(Json(1))
}

fn main() {}
