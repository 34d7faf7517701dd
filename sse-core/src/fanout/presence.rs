//! Waiting for presence to change: a selective subscriber came or went, so the counts of
//! [`Broadcaster::presence`](crate::Broadcaster::presence) may differ.

use std::sync::Arc;

use tokio::sync::watch;

use super::hub::Hub;

/// Wakes when a stream with topics opens or ends, so that presence counts are read when they
/// may have changed instead of on a timer. Made by
/// [`Broadcaster::presence_changes`](crate::Broadcaster::presence_changes).
///
/// Changes coalesce: one wake-up may stand for many streams, so read the counts you care
/// about after each. Cheap to hold; it keeps the broadcaster's shared state alive, like a
/// clone of the broadcaster.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let events = sse_core::Broadcaster::new();
/// let mut changes = events.presence_changes();
/// let watcher = tokio::spawn(async move {
///     // One count per change, until the broadcaster shuts down.
///     while changes.changed().await {}
/// });
/// events.shutdown();
/// watcher.await.unwrap();
/// # }
/// ```
pub struct PresenceChanges {
    rx: watch::Receiver<u64>,
    shared: Arc<Hub>,
}

impl PresenceChanges {
    pub(crate) fn new(shared: Arc<Hub>) -> Self {
        Self {
            rx: shared.presence.subscribe(),
            shared,
        }
    }

    /// Waits for the next change after the last one seen: `true` when there was one, `false`
    /// once the broadcaster is shut down.
    pub async fn changed(&mut self) -> bool {
        if self.shared.is_closed() {
            return false;
        }
        // The sender lives in the shared state this holds, so it is never dropped first.
        self.rx.changed().await.is_ok() && !self.shared.is_closed()
    }
}

impl std::fmt::Debug for PresenceChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceChanges").finish_non_exhaustive()
    }
}
