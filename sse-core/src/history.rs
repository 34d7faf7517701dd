//! The history: recent frames kept for `Last-Event-ID` replay and for catching up
//! subscribers that fell behind.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::broadcaster::Shared;
use crate::builder::Config;
use crate::encode;
use crate::filter::{Filter, Route};
use crate::EventId;

pub(crate) struct State {
    /// The epoch of the ids: the broadcaster's, or the Redis stream's once connected.
    pub(crate) epoch: u64,
    /// Local sequence number of the last published event (0 before the first); with the
    /// Redis backend, of the last entry read from the stream.
    pub(crate) last_seq: u64,
    /// The id of that event (on the wire), or the starting point.
    pub(crate) last_id: EventId,
    pub(crate) history: VecDeque<Frame>,
    pub(crate) history_bytes: usize,
    /// `None` once shut down: dropping the sender wakes every subscriber.
    pub(crate) tx: Option<broadcast::Sender<Frame>>,
}

impl State {
    /// The history's frames after sequence number `after`. Sequence numbers in the history
    /// are consecutive, so this is an index, not a scan.
    pub(crate) fn frames_after(&self, after: u64) -> impl Iterator<Item = &Frame> + '_ {
        let skip = self.history.front().map_or(0, |f| {
            usize::try_from((after + 1).saturating_sub(f.seq)).unwrap_or(usize::MAX)
        });
        self.history.range(skip.min(self.history.len())..)
    }
}

/// One encoded event, shared by all subscribers.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// Local position, consecutive in the history (whatever the id looks like).
    pub(crate) seq: u64,
    pub(crate) id: EventId,
    pub(crate) bytes: Bytes,
    pub(crate) route: Arc<Route>,
}

impl Frame {
    /// A frame not yet placed in the history (its `seq` is set then).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(id: EventId, bytes: Bytes, route: Arc<Route>) -> Self {
        Self {
            seq: 0,
            id,
            bytes,
            route,
        }
    }
}

impl State {
    /// Appends `frame` as the next event: history (trimmed), then every live subscriber.
    pub(crate) fn push(&mut self, mut frame: Frame, config: &Config) {
        frame.seq = self.last_seq + 1;
        self.last_seq = frame.seq;
        self.last_id = frame.id;
        if config.history > 0 {
            self.history_bytes += frame.bytes.len();
            self.history.push_back(frame.clone());
            while self.history.len() > config.history
                || (self.history_bytes > config.history_bytes && self.history.len() > 1)
            {
                if let Some(old) = self.history.pop_front() {
                    self.history_bytes -= old.bytes.len();
                }
            }
        }
        if let Some(tx) = &self.tx {
            // An error only means nobody is subscribed right now.
            let _ = tx.send(frame);
        }
    }
}

/// Where a new subscriber starts.
pub(crate) struct Start {
    pub(crate) rx: broadcast::Receiver<Frame>,
    /// Frames to send before live ones: preamble, then replayed events or a reset.
    pub(crate) pending: VecDeque<Bytes>,
    /// Live frames up to this sequence number were already queued or are not wanted.
    pub(crate) last_seq: u64,
    /// The id of that frame.
    pub(crate) last_id: EventId,
    /// The client's id is older than the local history: fetch what it missed up to
    /// `last_id` from the shared store before sending live frames.
    pub(crate) replay_after: Option<EventId>,
    /// The client's id is newer than what this instance has read from the shared store:
    /// skip live frames up to it.
    pub(crate) floor: Option<EventId>,
}

/// Where a `Last-Event-ID` resumes.
pub(crate) enum Resume {
    /// After this local sequence number, from the history.
    After(u64),
    /// From the shared store (Redis), older than the local history.
    Store(EventId),
    /// Not read here yet (another instance published it): live frames up to it are skipped.
    Ahead(EventId),
    Reset(&'static str),
}

/// What a subscriber gets after falling behind.
pub(crate) enum CatchUp {
    /// Everything it missed was queued.
    Complete { last_seq: u64, last_id: EventId },
    /// The byte budget was used up: what it missed up to `last_seq` (whose id is `last_id`,
    /// `None` when nothing was read) was queued, the rest is still in the history for the
    /// next call.
    Partial {
        last_seq: u64,
        last_id: Option<EventId>,
    },
    /// What it missed is gone: a reset event was queued.
    Reset { last_seq: u64, last_id: EventId },
}

impl Shared {
    /// Where the client that last saw `id` resumes.
    fn resolve(&self, state: &State, id: EventId) -> Resume {
        let stale = "Last-Event-ID is from another server instance or an earlier run";
        let too_old = "Last-Event-ID is older than the server's history";
        let current = state.last_seq;
        if id.epoch() != state.epoch || id.redis_entry().is_some() != self.is_redis() {
            return Resume::Reset(stale);
        }
        if !self.is_redis() {
            let oldest = state.history.front().map_or(current + 1, |f| f.seq);
            return match id.seq() {
                seq if seq > current => Resume::Reset(stale),
                seq if seq + 1 >= oldest => Resume::After(seq),
                _ => Resume::Reset(too_old),
            };
        }
        let pos = id.position();
        if pos == state.last_id.position() {
            return Resume::After(current);
        }
        if pos > state.last_id.position() {
            // Another instance's event, a few milliseconds ahead of this one's reader. An
            // id far in the future is not one Redis gave out.
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let horizon = now_ms.max(state.last_id.position().0) + 10_000;
            return if pos.0 <= horizon {
                Resume::Ahead(id)
            } else {
                Resume::Reset(stale)
            };
        }
        match state
            .history
            .binary_search_by(|f| f.id.position().cmp(&pos))
        {
            Ok(i) => Resume::After(state.history[i].seq),
            Err(_) => Resume::Store(id),
        }
    }

    /// Registers a subscriber resuming after `last_event_id` (the raw header or query value).
    pub(crate) fn subscribe(&self, last_event_id: Option<&str>, filter: &Filter) -> Option<Start> {
        let state = self.lock();
        let rx = state.tx.as_ref()?.subscribe();
        let current = state.last_seq;
        let current_id = state.last_id;
        let mut pending = VecDeque::new();
        let mut replay_after = None;
        let mut floor = None;
        let resume = last_event_id.map(|raw| match raw.trim().parse::<EventId>() {
            Err(_) => Resume::Reset("malformed Last-Event-ID"),
            Ok(id) => self.resolve(&state, id),
        });
        match resume {
            None => pending.push_back(encode::preamble(self.config.retry, Some(current_id))),
            Some(Resume::After(after)) => {
                pending.push_back(encode::preamble(
                    self.config.retry,
                    (after == current).then_some(current_id),
                ));
                let mut last_sent = after;
                for frame in state.frames_after(after).filter(|f| filter.wants(&f.route)) {
                    pending.push_back(frame.bytes.clone());
                    last_sent = frame.seq;
                }
                // When the last missed events were not for this subscriber, move the client's
                // id past them, so that its next reconnect does not look at them again.
                if last_sent < current {
                    pending.push_back(encode::id_only(current_id));
                }
                self.counters.resumed.fetch_add(1, Ordering::Relaxed);
            }
            Some(Resume::Store(id)) => {
                pending.push_back(encode::preamble(self.config.retry, None));
                replay_after = Some(id);
            }
            Some(Resume::Ahead(id)) => {
                pending.push_back(encode::preamble(self.config.retry, None));
                floor = Some(id);
                self.counters.resumed.fetch_add(1, Ordering::Relaxed);
            }
            Some(Resume::Reset(reason)) => {
                pending.push_back(encode::preamble(self.config.retry, None));
                pending.push_back(encode::reset(current_id, reason, self.config.format));
                self.counters.resets.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    last_event_id = last_event_id.unwrap_or_default(),
                    reason,
                    "sse subscriber cannot resume; sent reset"
                );
            }
        }
        drop(state);
        self.counters.subscribers.fetch_add(1, Ordering::Relaxed);
        Some(Start {
            rx,
            pending,
            last_seq: current,
            last_id: current_id,
            replay_after,
            floor,
        })
    }

    /// Places an entry read from the shared store: history, then live subscribers.
    #[cfg(feature = "redis")]
    pub(crate) fn push_entry(&self, id: EventId, frame: Frame) {
        let mut state = self.lock();
        if id.epoch() == state.epoch && id.position() > state.last_id.position() {
            state.push(frame, &self.config);
        }
    }

    /// Starts reading the shared store's stream of epoch `id.epoch()` after `id`. A new epoch
    /// empties the local history: its ids are meaningless in the new stream.
    #[cfg(feature = "redis")]
    pub(crate) fn start_epoch(&self, id: EventId) {
        let mut state = self.lock();
        if state.epoch != id.epoch() {
            state.epoch = id.epoch();
            state.history.clear();
            state.history_bytes = 0;
        }
        state.last_id = id;
    }

    /// Queues what a subscriber that last saw `after` missed, or a reset if it is gone.
    pub(crate) fn catch_up(
        &self,
        after: u64,
        pending: &mut VecDeque<Bytes>,
        filter: &Filter,
        budget: usize,
    ) -> CatchUp {
        let state = self.lock();
        let current = state.last_seq;
        let last_id = state.last_id;
        let oldest = state.history.front().map_or(current + 1, |f| f.seq);
        if after + 1 >= oldest {
            // Bounded per call, so a subscriber far behind holds at most `budget` bytes of
            // queued frames (and of actix's write buffer) at a time.
            let mut queued = 0;
            let mut read = None;
            for frame in state.frames_after(after) {
                if queued >= budget {
                    return CatchUp::Partial {
                        last_seq: frame.seq - 1,
                        last_id: read,
                    };
                }
                read = Some(frame.id);
                if filter.wants(&frame.route) {
                    queued += frame.bytes.len();
                    pending.push_back(frame.bytes.clone());
                }
            }
            drop(state);
            self.counters.caught_up.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                missed = current - after,
                "sse subscriber fell behind; caught up from history"
            );
            CatchUp::Complete {
                last_seq: current,
                last_id,
            }
        } else {
            drop(state);
            let reason = "the subscriber fell behind further than the server's history reaches";
            pending.push_back(encode::reset(last_id, reason, self.config.format));
            self.counters.resets.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                missed = current - after,
                history = self.config.history,
                "sse subscriber fell behind beyond the history; sent reset"
            );
            CatchUp::Reset {
                last_seq: current,
                last_id,
            }
        }
    }
}
