//! Which broadcaster `#[emit_event]` publishes to: the one a scope names, else the one the
//! `App` built on this worker thread registered.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

use super::capture::CapturedEvent;
use crate::fanout::{Broadcaster, Hub};

/// What to add to an `App` when no broadcaster was registered; shown in logs and error bodies.
pub(crate) const REGISTER_HINT: &str =
    "add `.configure(events.service(\"/events\"))` to your `App` (with `events` a \
     `sse_core::Broadcaster` built once, before `HttpServer::new`)";

/// Where events go in the current task or thread.
#[derive(Clone)]
pub(crate) enum Target {
    Broadcaster(Broadcaster),
    Capture(Arc<Mutex<Vec<CapturedEvent>>>),
    /// The events of a transactional handler, written with its commit.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    Pending(Arc<Mutex<super::transaction::Pending>>),
}

tokio::task_local! {
    static SCOPE: Target;
}

thread_local! {
    /// The broadcaster registered by the `App` built on this (worker) thread.
    static WORKER_DEFAULT: RefCell<Option<Weak<Hub>>> = const { RefCell::new(None) };
}

/// Runs `f` (synchronous) with `target` as where events go.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn with_target<R>(target: Target, f: impl FnOnce() -> R) -> R {
    SCOPE.sync_scope(target, f)
}

pub(crate) fn scoped<F: Future>(target: Target, fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(target, fut)
}

/// Makes `events` the target of `#[emit_event]` on this thread. actix builds each worker's
/// `App` on the thread that then runs its handlers, so this is per `App` and worker.
pub(crate) fn register_worker_default(events: &Broadcaster) {
    WORKER_DEFAULT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(other) = slot.as_ref().and_then(Weak::upgrade) {
            if !Arc::ptr_eq(&other, &events.shared) && !other.is_closed() {
                tracing::warn!(
                    "two sse_core::Broadcasters were registered on one thread; `#[emit_event]` \
                     handlers here publish to the one registered last. Wrap calls in \
                     `Broadcaster::scope` to choose explicitly."
                );
            }
        }
        *slot = Some(Arc::downgrade(&events.shared));
    });
}

pub(crate) fn current_target() -> Option<Target> {
    SCOPE.try_with(Target::clone).ok().or_else(|| {
        WORKER_DEFAULT
            .with(|slot| slot.borrow().as_ref().and_then(Weak::upgrade))
            .map(|shared| Target::Broadcaster(Broadcaster { shared }))
    })
}

impl Broadcaster {
    /// Runs `fut` with this broadcaster as the target of the `#[emit_event]` handlers it
    /// calls, overriding the one registered on the `App`. Useful in background tasks, tests and
    /// apps that register several broadcasters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use actix_web::web::Json;
    /// use sse_core::{emit_event, Broadcaster};
    ///
    /// #[emit_event("pinged")]
    /// async fn ping() -> Json<u32> {
    ///     Json(7)
    /// }
    ///
    /// let events = Broadcaster::new();
    /// events.scope(ping()).await;
    /// assert_eq!(events.stats().published, 1);
    /// # }
    /// ```
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        scoped(Target::Broadcaster(self.clone()), fut).await
    }
}
