//! The hub: what a broadcaster's clones and its streams share: the configuration, the history and
//! live state behind one lock, the counters, the subscriber limits and the event log; and
//! where the event log delivers ([`Sink`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{broadcast, watch};

use super::admission::{Admission, Limits, OverLimit};
use super::builder::Config;
use super::frame::Frame;
use super::history::{CatchUp, History, Resume, Subscription, Wanted};
use super::index::SubId;
use super::stats::Counters;
use crate::engine::{Body, Engine, Entry, Sink};
use crate::topic::Filter;
use crate::wire::ResetReason;
use crate::wire::{new_epoch, EventId, LastEventId};

// Fields private to the fan-out: `http` and `emit` go through the methods below.
pub(crate) struct Hub {
    pub(super) config: Config,
    pub(super) state: Mutex<History>,
    pub(super) closed: AtomicBool,
    /// The one owner of counting: every happening goes through its methods.
    pub(super) counters: Counters,
    /// Open endpoint streams, in total and per peer address.
    limits: Arc<Limits>,
    /// The event log shared with other instances, when the builder chose one.
    log: Option<Arc<dyn Engine>>,
    /// Bumped when a selective subscriber comes or goes, and at shutdown: what
    /// [`PresenceChanges`](super::PresenceChanges) waits on.
    pub(super) presence: watch::Sender<u64>,
    /// Whether this instance knows the shared stream's epoch (always, without an engine):
    /// until it does, an engine's id cannot be told from another run's.
    linked: watch::Sender<bool>,
}

/// How long a resuming client waits for a just-started instance to read its engine's epoch
/// (a rolling deploy) before it is answered as if the engine were down, with a reset.
const LINK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Hub {
    /// The state `config` describes, with a new epoch for its ids; its event log (if the
    /// builder chose one) starts following the shared stream.
    pub(crate) fn start(config: Config) -> Arc<Self> {
        // A large history is served from the `VecDeque`; the channel only needs to absorb
        // short bursts between a subscriber's polls.
        let capacity = config.history.clamp(16, 1024);
        let (tx, _) = broadcast::channel(capacity);
        let log = config.open_engine();
        let linked = watch::Sender::new(log.is_none());
        let shared = Arc::new(Self {
            state: Mutex::new(History::new(new_epoch(), tx)),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            limits: Arc::new(Limits::new(
                config.max_subscribers,
                config.max_subscribers_per_ip,
            )),
            log,
            presence: watch::Sender::new(0),
            linked,
            config,
        });
        if let Some(log) = &shared.log {
            // A log that knows where it starts gives its ids from the first stream on.
            if let Some(at) = log.known_start() {
                shared
                    .lock()
                    .start_epoch(at, &shared.config, &shared.counters);
                shared.linked.send_replace(true);
            }
            let weak: Weak<Hub> = Arc::downgrade(&shared);
            log.clone().follow(weak);
        }
        shared
    }

    /// Waits, for at most [`LINK_WAIT`], until the instance has read its engine's epoch: a
    /// client resuming before that would get a reset for an id it cannot yet tell from
    /// another run's. At once without an engine.
    pub(crate) async fn until_linked(&self) {
        let mut linked = self.linked.subscribe();
        let _ = tokio::time::timeout(LINK_WAIT, linked.wait_for(|linked| *linked)).await;
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, History> {
        // The state is consistent after any panic in its short critical sections.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn log(&self) -> Option<&Arc<dyn Engine>> {
        self.log.as_ref()
    }

    /// What the builder chose.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Where `http` and `emit` report what happened (refusals, failed emissions).
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Takes a place for a stream from `ip` under the subscriber limits.
    pub(crate) fn admit(&self, ip: Option<IpAddr>) -> Result<Admission, OverLimit> {
        self.limits.admit(ip)
    }

    /// The levels of the subscription index, for tests of what a request costs it.
    #[cfg(test)]
    pub(crate) fn index_levels(&self) -> usize {
        self.lock().index.levels()
    }

    /// Registers a subscriber resuming after `last_event_id`.
    pub(crate) fn subscribe(
        &self,
        last_event_id: LastEventId,
        filter: Filter,
    ) -> Option<Subscription> {
        let start = self
            .lock()
            .start(last_event_id, filter, &self.config, self.log.as_deref())?;
        let c = &self.counters;
        match start.resume {
            Resume::After(..) | Resume::Ahead(_) => c.resumed(),
            Resume::Reset(reason) => {
                let summary = c.resume_reset(reason);
                // A client's doing, at any rate it likes: a debug line, counted in the stats
                // and metrics (by reason), never a log line per request at INFO.
                tracing::debug!(
                    ?last_event_id,
                    reason = reason.label(),
                    "sse subscriber cannot resume; sent reset"
                );
                if let Some(since) = summary {
                    tracing::info!(
                        resets = since,
                        "sse streams whose Last-Event-ID could not be resumed since the last \
                         summary (each is logged at debug; by reason in sse_resets_total)"
                    );
                }
            }
            // Counted when the log answers.
            Resume::Fresh | Resume::Log(_) => {}
        }
        c.subscribed();
        if start.is_selective() {
            self.presence_changed();
        }
        Some(start)
    }

    /// Forgets a selective subscriber whose stream ended.
    pub(crate) fn unsubscribe(&self, id: SubId) {
        self.lock().index.remove(id);
        self.presence_changed();
    }

    /// Wakes whoever waits for a change of presence (after the index changed, outside its
    /// lock).
    pub(crate) fn presence_changed(&self) {
        self.presence.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What a subscriber that last saw `after` missed, a budget at a time, or a reset if it
    /// is gone (counted here).
    pub(crate) fn catch_up(
        &self,
        after: u64,
        missed: &mut Vec<Frame>,
        wanted: Wanted<'_>,
        budget: usize,
    ) -> CatchUp {
        let outcome = self.lock().catch_up(after, missed, wanted, budget);
        if let CatchUp::Reset { .. } = outcome {
            self.counters.reset(ResetReason::FellBehind);
        }
        outcome
    }
}

/// Where the event log delivers: this broadcaster's history and live subscribers.
impl Sink for Hub {
    fn start_epoch(&self, at: EventId) {
        // Counted before the reset is sent: whoever sees the reset sees the count.
        if self.lock().start_epoch(at, &self.config, &self.counters) {
            tracing::warn!("sse event store restarted empty or was flushed; subscribers reset");
        }
        self.linked.send_replace(true);
    }

    fn gap(&self, reason: ResetReason) {
        self.lock().reset_live(reason, &self.config, &self.counters);
        tracing::warn!(
            reason = reason.label(),
            "sse events lost before this instance read them; subscribers reset"
        );
    }

    fn deliver(&self, entry: Entry) {
        self.counters.arrived(entry.id);
        if let Body::Reset(reason) = entry.body {
            self.counters.relayed_reset(reason);
        }
        // Encoded once, before the lock: every subscriber of this instance shares the bytes.
        let frame = Frame::encode(entry, self.config.format);
        self.lock().push_entry(frame, &self.config);
    }
}
