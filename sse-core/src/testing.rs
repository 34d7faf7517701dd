//! Helpers for testing handlers annotated with `#[emit_event]` (`capture`), and an in-memory
//! event log for testing code that runs several instances (`MemoryStore`).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::emit::CapturedEvent;
use crate::emit::{scoped, Target};
pub use crate::log::memory::MemoryStore;

/// Runs `fut` (a handler called directly, or `actix_web::test::call_service`) and returns its
/// output with the events its `#[emit_event]` handlers emitted, in order. Nothing is
/// published.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use actix_web::web::Json;
/// use sse_core::emit_event;
///
/// #[derive(serde::Serialize)]
/// struct User { id: u32, name: String }
///
/// #[emit_event("user_created")]
/// async fn create(name: String) -> Result<Json<User>, actix_web::Error> {
///     Ok(Json(User { id: 1, name }))
/// }
///
/// let (response, events) = sse_core::testing::capture(create("ada".into())).await;
/// assert!(response.is_ok());
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].name, "user_created");
/// assert_eq!(events[0].payload, serde_json::json!({"id": 1, "name": "ada"}));
/// # }
/// ```
pub async fn capture<F: Future>(fut: F) -> (F::Output, Vec<CapturedEvent>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let output = scoped(Target::Capture(sink.clone()), fut).await;
    let events = std::mem::take(&mut *sink.lock().unwrap_or_else(PoisonError::into_inner));
    (output, events)
}
