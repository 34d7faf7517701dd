//! What a server engine (Redis, NATS) and the broadcaster that owns it share, whatever the
//! engine: the outbox and its wake-up, the stop and flush signals, the replay queue and the
//! replay task that serves it, the counters, and the dedicated thread the engine's tasks run
//! on.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

use super::outbox::Outbox;
use super::pages::{self, PageKey, PageSource, Request};
use super::{
    EngineStats, ReplayFrom, ReplayFuture, ReplayPage, ResetReason, Senders, Sink, StopFuture,
};
use crate::wire::EventId;

/// First replay pages kept for clients that ask for the same one.
const CACHE_PAGES: usize = 64;
const CACHE_FOR: Duration = Duration::from_secs(1);

/// The counters behind [`EngineStats`], and the one place an engine's link is counted: the
/// engines call the method named after what happened. Relaxed: each is a total read on its
/// own, and nothing is ordered by it.
#[derive(Default)]
pub(crate) struct Counters {
    reconnects: AtomicU64,
    errors: AtomicU64,
    epoch_changes: AtomicU64,
    gaps: AtomicU64,
    latency_last_us: AtomicU64,
    latency_max_us: AtomicU64,
}

impl Counters {
    /// The engine connected again after losing the store.
    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        crate::observe::engine_reconnected();
    }

    /// A failure: the store unreachable or refusing, or an entry that is not one of ours.
    pub(crate) fn failed(&self) {
        self.failures(1);
    }

    /// `n` failures at once (entries of one message that could not be read).
    pub(crate) fn failures(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }

    /// The store's stream began a new epoch (restarted empty, flushed, made again).
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
    pub(crate) fn epoch_changed(&self) {
        self.epoch_changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries were trimmed from the store before this instance read them.
    pub(crate) fn gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// The store acknowledged a batch whose oldest event waited `waited`; `outbox` events
    /// are still waiting.
    fn published(&self, waited: Duration, outbox: usize) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.latency_last_us.store(us, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
        crate::observe::engine_published(waited, outbox);
    }

    /// The counters now, with the outbox's.
    fn snapshot(&self, outbox: usize, outbox_dropped: u64) -> EngineStats {
        EngineStats {
            outbox,
            outbox_dropped,
            reconnects: self.reconnects.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            epoch_changes: self.epoch_changes.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
            relay_lag: 0,
            publish_latency_last_us: self.latency_last_us.load(Ordering::Relaxed),
            publish_latency_max_us: self.latency_max_us.load(Ordering::Relaxed),
        }
    }
}

/// The shared part of an engine whose outbox holds `T`.
pub(crate) struct EngineLink<T> {
    /// Names the engine's thread and its logs: "redis", "nats".
    name: &'static str,
    pub(crate) outbox: Outbox<T>,
    /// Woken when the outbox gets an event, or at stop.
    pub(crate) wake: Notify,
    pub(crate) stop: watch::Sender<bool>,
    /// Set by `stop`: until when the publisher may still send what is queued.
    flush_deadline: Mutex<Option<Instant>>,
    /// Set when the publisher has finished (sent or abandoned the outbox).
    done: watch::Sender<bool>,
    /// Replay pages asked for, served by the replay task.
    replays: mpsc::Sender<Request>,
    /// Taken by the replay task when it starts.
    replay_requests: Mutex<Option<mpsc::Receiver<Request>>>,
    pub(crate) counters: Counters,
}

impl<T: Clone + 'static> EngineLink<T> {
    /// An outbox of `outbox` events and a replay queue of [`pages::QUEUE`] requests.
    pub(crate) fn new(name: &'static str, outbox: usize) -> Self {
        let (replays, requests) = mpsc::channel(pages::QUEUE);
        Self {
            name,
            outbox: Outbox::new(outbox),
            wake: Notify::new(),
            stop: watch::channel(false).0,
            flush_deadline: Mutex::new(None),
            done: watch::channel(false).0,
            replays,
            replay_requests: Mutex::new(Some(requests)),
            counters: Counters::default(),
        }
    }

    /// Runs the engine's tasks, made by `tasks` from the engine and the replay requests, on
    /// a thread of their own with a current-thread runtime: they work whatever runtime (or
    /// none) built the broadcaster. If the thread cannot start, events stay in the outbox
    /// and the engine counts as stopped.
    pub(crate) fn spawn<L, F, Fut>(log: Arc<L>, control: fn(&L) -> &Self, tasks: F)
    where
        L: Send + Sync + 'static,
        F: FnOnce(Arc<L>, Option<mpsc::Receiver<Request>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let name = control(&log).name;
        let on_thread = log.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sse-{name}"))
            .spawn(move || {
                let ctl = control(&on_thread);
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        tracing::error!(engine = name, %err, "sse engine: cannot build its runtime; events stay in the outbox");
                        ctl.finished();
                        return;
                    }
                };
                let requests = ctl
                    .replay_requests
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                rt.block_on(tasks(on_thread.clone(), requests));
            });
        if let Err(err) = spawned {
            tracing::error!(engine = name, %err, "sse engine: cannot start its thread; events stay in the outbox");
            control(&log).finished();
        }
    }

    /// Queues an event and wakes the publisher.
    pub(crate) fn append(&self, item: T) {
        self.outbox.push(item);
        self.wake.notify_one();
    }

    /// Queues a relayed row as ticket `ticket` and wakes the publisher.
    #[cfg_attr(
        not(all(
            any(feature = "sqlite", feature = "postgres"),
            any(feature = "redis", feature = "nats")
        )),
        allow(dead_code)
    )]
    pub(crate) fn relay(&self, item: T, ticket: u64) {
        self.outbox.push_ticketed(ticket, item);
        self.wake.notify_one();
    }

    /// Asks the replay task for the page after `after`, up to `upto`, at most `max` events
    /// (1 to [`pages::MAX_PAGE`]; `seen`: the previous page's senders); a full queue is
    /// answered at once with `UNREACHABLE`, counted.
    pub(crate) fn replay(
        &self,
        from: ReplayFrom,
        upto: EventId,
        max: usize,
        seen: Option<Senders>,
    ) -> ReplayFuture {
        let (reply, answer) = oneshot::channel();
        let max = max.clamp(1, pages::MAX_PAGE);
        let key = PageKey { from, upto, max };
        if self.replays.try_send(Request { key, seen, reply }).is_err() {
            self.counters.failed();
            return Box::pin(std::future::ready(Err(ResetReason::Unreachable)));
        }
        Box::pin(async move { answer.await.unwrap_or(Err(ResetReason::Unreachable)) })
    }

    pub(crate) fn stop(&self, flush: Duration) {
        let deadline = Instant::now() + flush;
        self.flush_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(deadline);
        self.stop.send_replace(true);
        self.wake.notify_one();
    }

    pub(crate) fn stopped(&self) -> StopFuture {
        let mut done = self.done.subscribe();
        Box::pin(async move {
            // An error means the engine is gone: stopped too.
            let _ = done.wait_for(|done| *done).await;
        })
    }

    /// Marks the publisher finished: `stopped()` resolves.
    pub(crate) fn finished(&self) {
        self.done.send_replace(true);
    }

    pub(crate) fn stats(&self) -> EngineStats {
        self.counters
            .snapshot(self.outbox.len(), self.outbox.dropped())
    }

    pub(crate) fn flush_deadline_passed(&self) -> bool {
        self.flush_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Whether the engine should end: stopped, or its broadcaster dropped.
    pub(crate) fn stopping(&self, sink: &Weak<dyn Sink>) -> bool {
        *self.stop.borrow() || sink.strong_count() == 0
    }

    /// Records how long the oldest event of a batch the store acknowledged waited (queued
    /// at `queued_at`), queue time included: what a handler's event waits for the store.
    pub(crate) fn published(&self, queued_at: Instant) {
        self.counters
            .published(queued_at.elapsed(), self.outbox.len());
    }

    /// The replay task: serves one page per request from the streams, keeps first pages briefly
    /// for the clients that reconnect together with the same id (after a deploy, every client
    /// does), and makes its connection again after a failure; until the engine stops or its
    /// broadcaster is dropped. `source` connects and reads pages.
    pub(crate) async fn serve_replays<S: PageSource>(
        &self,
        source: &S,
        sink: &Weak<dyn Sink>,
        mut requests: mpsc::Receiver<Request>,
    ) {
        let mut stop = self.stop.subscribe();
        let mut conn: Option<S::Conn> = None;
        let mut cache: VecDeque<(PageKey, Instant, Arc<ReplayPage>)> = VecDeque::new();
        loop {
            let request = tokio::select! {
                request = requests.recv() => request,
                _ = stop.changed() => None,
            };
            let Some(request) = request else {
                return;
            };
            if self.stopping(sink) {
                return;
            }
            // Only first pages are shared: later ones depend on what the client's replay saw.
            let first = request.seen.is_none();
            cache.retain(|(_, at, _)| at.elapsed() < CACHE_FOR);
            if let Some((_, _, page)) = cache
                .iter()
                .find(|(key, _, _)| first && *key == request.key)
            {
                let _ = request.reply.send(Ok(ReplayPage::clone(page)));
                continue;
            }
            if conn.is_none() || (first && S::CONNECT_FOR_FIRST_PAGE) {
                conn = match source.connect().await {
                    Ok(c) => Some(c),
                    Err(err) => {
                        source.failed(&err);
                        None
                    }
                };
            }
            let Some(c) = &mut conn else {
                let _ = request.reply.send(Err(ResetReason::Unreachable));
                continue;
            };
            let fetched = source.fetch(c, request.key, request.seen);
            let result = match tokio::time::timeout(S::TIMEOUT, fetched).await {
                Ok(Ok(result)) => result,
                Ok(Err(err)) => {
                    source.failed(&err);
                    conn = None;
                    Err(ResetReason::Unreachable)
                }
                Err(_) => {
                    source.failed(&"timed out");
                    conn = None;
                    Err(ResetReason::Unreachable)
                }
            };
            if let (Ok(page), true) = (&result, first) {
                if cache.len() == CACHE_PAGES {
                    cache.pop_front();
                }
                cache.push_back((request.key, Instant::now(), Arc::new(page.clone())));
            }
            // The stream may have ended meanwhile: nobody to answer.
            let _ = request.reply.send(result);
        }
    }

    /// A guard that marks the publisher finished when dropped, however its task ends.
    pub(crate) fn finish_on_drop(&self) -> FinishOnDrop<'_, T> {
        FinishOnDrop(self)
    }
}

/// See [`EngineLink::finish_on_drop`].
pub(crate) struct FinishOnDrop<'a, T: Clone + 'static>(&'a EngineLink<T>);

impl<T: Clone + 'static> Drop for FinishOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.finished();
    }
}
