use sse_core::emit_event;

#[emit_event("user_updated")]
struct User {
    id: u64,
}

fn main() {}
