//! `topic`, `private` and `to_others`, alone and together, in any order.
use actix_web::web::Json;
use sse_core::emit_event;

#[derive(serde::Serialize)]
struct Order {
    id: u64,
    customer: Customer,
}

#[derive(serde::Serialize)]
struct Customer {
    id: u64,
}

#[emit_event("order_created", topic = "orders/{id}")]
async fn create() -> Json<Order> {
    Json(Order { id: 1, customer: Customer { id: 2 } })
}

#[emit_event("order_shipped", topic = "customers/{customer.id}/orders/{id}", private)]
#[emit_event("order_changed", to_others, topic = "orders/{id}")]
async fn ship() -> Json<Order> {
    Json(Order { id: 1, customer: Customer { id: 2 } })
}

#[emit_event("pinged", private, to_others,)]
async fn ping() -> Json<u32> {
    Json(1)
}

fn main() {
    let _ = (create(), ship(), ping());
}
