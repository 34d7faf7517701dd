use actix_web::web::Json;
use sse_core::emit_event;

#[emit_event("order_shipped", topic = "orders//{id}")]
async fn handler() -> Json<u32> {
    Json(1)
}

fn main() {}
