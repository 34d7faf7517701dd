//! The history: recent frames kept for `Last-Event-ID` replay and for catching up
//! subscribers that fell behind, with the ids that say where everything stands.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::broadcast;

use super::builder::Config;
use crate::log::{reason, EventLog, Frame};
use crate::topic::Filter;
use crate::wire::{encode, EventId};

/// Everything the publish lock guards.
pub(crate) struct State {
    /// The epoch of the ids: the broadcaster's, or the event log's once connected.
    pub(crate) epoch: u64,
    /// Local sequence number of the last event placed (0 before the first); with an event
    /// log, of the last entry read from it.
    pub(crate) last_seq: u64,
    /// The id of that event (on the wire), or the starting point.
    pub(crate) last_id: EventId,
    pub(crate) frames: VecDeque<Frame>,
    pub(crate) bytes: usize,
    /// `None` once shut down: dropping the sender wakes every subscriber.
    pub(crate) tx: Option<broadcast::Sender<Frame>>,
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
    /// `last_id` from the event log before sending live frames.
    pub(crate) replay_after: Option<EventId>,
    /// The client's id is newer than what this instance has read from the event log: skip
    /// live frames up to it.
    pub(crate) floor: Option<EventId>,
    /// How the `Last-Event-ID` was answered, for the counters.
    pub(crate) resume: Resume,
}

/// Where a `Last-Event-ID` resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// No `Last-Event-ID`: live events only.
    Fresh,
    /// After this local sequence number, from the history.
    After(u64),
    /// From the event log, older than the local history.
    Log(EventId),
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

impl State {
    pub(crate) fn new(epoch: u64, tx: broadcast::Sender<Frame>) -> Self {
        Self {
            epoch,
            last_seq: 0,
            last_id: EventId::new(epoch, 0),
            frames: VecDeque::new(),
            bytes: 0,
            tx: Some(tx),
        }
    }

    /// The history's frames after sequence number `after`. Sequence numbers in the history
    /// are consecutive, so this is an index, not a scan.
    pub(crate) fn frames_after(&self, after: u64) -> impl Iterator<Item = &Frame> + '_ {
        let skip = self.frames.front().map_or(0, |f| {
            usize::try_from((after + 1).saturating_sub(f.seq)).unwrap_or(usize::MAX)
        });
        self.frames.range(skip.min(self.frames.len())..)
    }

    /// Appends `frame` as the next event: history (trimmed), then every live subscriber.
    pub(crate) fn push(&mut self, mut frame: Frame, config: &Config) {
        frame.seq = self.last_seq + 1;
        self.last_seq = frame.seq;
        self.last_id = frame.id;
        if config.history > 0 {
            self.bytes += frame.bytes.len();
            self.frames.push_back(frame.clone());
            while self.frames.len() > config.history
                || (self.bytes > config.history_bytes && self.frames.len() > 1)
            {
                if let Some(old) = self.frames.pop_front() {
                    self.bytes -= old.bytes.len();
                }
            }
        }
        if let Some(tx) = &self.tx {
            // An error only means nobody is subscribed right now.
            let _ = tx.send(frame);
        }
    }

    /// Places an entry read from the event log, unless it is at or before the last one.
    pub(crate) fn push_entry(&mut self, frame: Frame, config: &Config) {
        if frame.id.epoch() == self.epoch && frame.id.position() > self.last_id.position() {
            self.push(frame, config);
        }
    }

    /// Starts reading the event log's stream of epoch `at.epoch()` after `at`. A new epoch
    /// empties the local history: its ids are meaningless in the new stream.
    pub(crate) fn start_epoch(&mut self, at: EventId) {
        if self.epoch != at.epoch() {
            self.epoch = at.epoch();
            self.frames.clear();
            self.bytes = 0;
        }
        self.last_id = at;
    }

    /// Where the client that last saw `id` resumes.
    fn resolve(&self, id: EventId, log: Option<&dyn EventLog>) -> Resume {
        let current = self.last_seq;
        if id.epoch() != self.epoch {
            return Resume::Reset(reason::STALE);
        }
        let Some(log) = log else {
            let oldest = self.frames.front().map_or(current + 1, |f| f.seq);
            return match id.seq() {
                seq if seq > current || id.entry_parts().is_some() => Resume::Reset(reason::STALE),
                seq if seq + 1 >= oldest => Resume::After(seq),
                _ => Resume::Reset(reason::TOO_OLD),
            };
        };
        let pos = id.position();
        if pos == self.last_id.position() {
            return Resume::After(current);
        }
        if pos > self.last_id.position() {
            return if log.may_be_ahead(id, self.last_id) {
                Resume::Ahead(id)
            } else {
                Resume::Reset(reason::STALE)
            };
        }
        match self.frames.binary_search_by(|f| f.id.position().cmp(&pos)) {
            Ok(i) => Resume::After(self.frames[i].seq),
            Err(_) => Resume::Log(id),
        }
    }

    /// A new subscriber resuming after `last_event_id` (the raw header or query value);
    /// `None` once shut down.
    pub(crate) fn start(
        &self,
        last_event_id: Option<&str>,
        filter: &Filter,
        config: &Config,
        log: Option<&dyn EventLog>,
    ) -> Option<Start> {
        let rx = self.tx.as_ref()?.subscribe();
        let current = self.last_seq;
        let current_id = self.last_id;
        let resume = last_event_id.map_or(Resume::Fresh, |raw| match raw.trim().parse() {
            Err(_) => Resume::Reset("malformed Last-Event-ID"),
            Ok(id) => self.resolve(id, log),
        });
        let mut pending = VecDeque::new();
        let preamble_id = match resume {
            Resume::Fresh => Some(current_id),
            Resume::After(after) => (after == current).then_some(current_id),
            _ => None,
        };
        pending.push_back(encode::preamble(config.retry, preamble_id));
        match resume {
            Resume::After(after) => {
                let mut last_sent = after;
                for frame in self.frames_after(after).filter(|f| filter.wants(&f.route)) {
                    pending.push_back(frame.bytes.clone());
                    last_sent = frame.seq;
                }
                // When the last missed events were not for this subscriber, move the client's
                // id past them, so that its next reconnect does not look at them again.
                if last_sent < current {
                    pending.push_back(encode::id_only(current_id));
                }
            }
            Resume::Reset(reason) => {
                pending.push_back(encode::reset(current_id, reason, config.format));
            }
            Resume::Fresh | Resume::Log(_) | Resume::Ahead(_) => {}
        }
        Some(Start {
            rx,
            pending,
            last_seq: current,
            last_id: current_id,
            replay_after: match resume {
                Resume::Log(id) => Some(id),
                _ => None,
            },
            floor: match resume {
                Resume::Ahead(id) => Some(id),
                _ => None,
            },
            resume,
        })
    }

    /// Queues what a subscriber that last saw `after` missed, up to `budget` bytes, or a
    /// reset if it is gone.
    pub(crate) fn catch_up(
        &self,
        after: u64,
        pending: &mut VecDeque<Bytes>,
        filter: &Filter,
        budget: usize,
        config: &Config,
    ) -> CatchUp {
        let current = self.last_seq;
        let last_id = self.last_id;
        let oldest = self.frames.front().map_or(current + 1, |f| f.seq);
        if after + 1 < oldest {
            let reason = "the subscriber fell behind further than the server's history reaches";
            pending.push_back(encode::reset(last_id, reason, config.format));
            return CatchUp::Reset {
                last_seq: current,
                last_id,
            };
        }
        // Bounded per call, so a subscriber far behind holds at most `budget` bytes of queued
        // frames (and of actix's write buffer) at a time.
        let mut queued = 0;
        let mut read = None;
        for frame in self.frames_after(after) {
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
        CatchUp::Complete {
            last_seq: current,
            last_id,
        }
    }
}
