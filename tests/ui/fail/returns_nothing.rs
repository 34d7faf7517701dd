use sse_core::emit_event;

#[emit_event("user_updated")]
async fn handler() {}

fn main() {}
