//! The history: recent frames kept for `Last-Event-ID` replay and for catching up
//! subscribers that fell behind, with the ids that say where everything stands.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;

use super::builder::Config;
use super::frame::Frame;
use super::index::{Index, SubId};
use super::mailbox::Mailbox;
use super::stats::Counters;
use crate::engine::{Engine, ReplayFrom, ResetReason};
use crate::topic::Filter;
use crate::wire::{encode, EventId, LastEventId};

/// Everything the publish lock guards.
pub(crate) struct History {
    /// The epoch of the ids: the broadcaster's, or the event log's once connected.
    pub(crate) epoch: u64,
    /// Local sequence number of the last event placed (0 before the first); with an event
    /// log, of the last entry read from it.
    pub(crate) last_seq: u64,
    /// The id of that event (on the wire), or the starting point.
    pub(crate) last_id: EventId,
    pub(crate) frames: VecDeque<Frame>,
    pub(crate) bytes: usize,
    /// Live frames for the subscribers that chose no topic (every public event); `None` once
    /// shut down: dropping the sender wakes them.
    pub(crate) tx: Option<broadcast::Sender<Frame>>,
    /// The subscribers that chose topics, each woken only for the events it wants.
    pub(crate) index: Index,
    /// The event log has given its first position.
    log_started: bool,
}

/// Where a subscriber's live frames come from.
pub(crate) enum Live {
    /// Every public event, through the broadcast channel (no topic chosen); the filter still
    /// decides on private events and the sender's own.
    Broadcast(broadcast::Receiver<Frame>, Filter),
    /// Only the events it wants, from the subscription index.
    Mailbox(Arc<Mailbox>, SubId),
}

/// Where a new subscriber starts.
pub(crate) struct Subscription {
    pub(crate) live: Live,
    /// Frames to send before live ones: preamble, then replayed events or a reset.
    pub(crate) pending: VecDeque<Bytes>,
    /// Live frames up to this sequence number were already queued or are not wanted.
    pub(crate) last_seq: u64,
    /// The id of that frame.
    pub(crate) last_id: EventId,
    /// What the client missed is still in the history, after `last_seq`: the stream reads it
    /// from there a batch at a time (it holds a position, not a copy).
    pub(crate) catch_up: bool,
    /// The client's id is older than the local history (or it asked for the oldest event
    /// kept): fetch what it missed up to `last_id` from the event log before sending live
    /// frames.
    pub(crate) replay_from: Option<ReplayFrom>,
    /// The client's id is newer than what this instance has read from the event log: skip
    /// live frames up to it.
    pub(crate) floor: Option<EventId>,
    /// How the `Last-Event-ID` was answered, for the counters.
    pub(crate) resume: Resume,
}

impl Subscription {
    /// Whether the subscriber chose topics (and so sits in the subscription index).
    pub(crate) fn is_selective(&self) -> bool {
        matches!(self.live, Live::Mailbox(..))
    }
}

/// Where a `Last-Event-ID` resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// No `Last-Event-ID`: live events only.
    Fresh,
    /// After this local sequence number (the event with the client's id), from the history.
    After(u64, EventId),
    /// From the event log, older than the local history.
    Log(ReplayFrom),
    /// Not read here yet (another instance published it): live frames up to it are skipped.
    Ahead(EventId),
    Reset(ResetReason),
}

/// What a subscriber gets after falling behind.
pub(crate) enum CatchUp {
    /// Everything it missed was queued; `trailing_skipped` when the last frames were not for
    /// it.
    Complete {
        last_seq: u64,
        last_id: EventId,
        trailing_skipped: bool,
    },
    /// The budget was used up: what it missed up to `last_seq` (whose id is `last_id`) was
    /// queued, the rest is still in the history for the next call.
    Partial { last_seq: u64, last_id: EventId },
    /// What it missed is gone: it gets a reset event.
    Reset { last_seq: u64, last_id: EventId },
}

impl History {
    pub(crate) fn new(epoch: u64, tx: broadcast::Sender<Frame>) -> Self {
        Self {
            epoch,
            last_seq: 0,
            last_id: EventId::new(epoch, 0),
            frames: VecDeque::new(),
            bytes: 0,
            tx: Some(tx),
            index: Index::default(),
            log_started: false,
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

    /// The id of the newest frame in the history whose publisher chose `wire_id` as its id
    /// on the wire: a scan from the newest, as such ids have no order.
    #[cfg_attr(not(feature = "mercure"), allow(dead_code))]
    pub(crate) fn find_wire_id(&self, wire_id: &str) -> Option<EventId> {
        (self.frames.iter().rev())
            .find(|f| f.wire_id.as_deref() == Some(wire_id))
            .map(|f| f.id)
    }

    /// The id just before the oldest frame of the history (the newest id when it is empty),
    /// to resume from the earliest event kept. Without an engine only, whose ids are
    /// consecutive.
    pub(crate) fn before_oldest(&self) -> EventId {
        match self.frames.front() {
            Some(first) => EventId::new(self.epoch, first.id.seq().saturating_sub(1)),
            None => self.last_id,
        }
    }

    /// The id on the wire of the last event: its publisher's when it chose one.
    #[cfg_attr(not(feature = "mercure"), allow(dead_code))]
    pub(crate) fn last_wire_id(&self) -> String {
        match self.frames.back() {
            Some(Frame {
                seq,
                wire_id: Some(wire_id),
                ..
            }) if *seq == self.last_seq => wire_id.to_string(),
            _ => self.last_id.to_string(),
        }
    }

    /// Appends `frame` as the next event: history (trimmed), then every live subscriber.
    pub(crate) fn push(&mut self, mut frame: Frame, config: &Config) {
        if config.compress {
            frame.share_deflated();
        }
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
        self.deliver(frame);
    }

    /// Hands a new frame to its audience: the broadcast channel when it is public (for the
    /// subscribers that chose no topic), and the mailboxes of the selective subscribers the
    /// index finds for its topics (and whose grants allow it). A reset goes to everyone.
    fn deliver(&self, frame: Frame) {
        let Some(tx) = &self.tx else {
            return;
        };
        if frame.route.everyone {
            for mailbox in self.index.all() {
                mailbox.push(frame.clone());
            }
        } else {
            let topics = frame.route.topics.iter().map(|t| &**t);
            for mailbox in self.index.matching(topics) {
                if mailbox.filter.wants(&frame.route) {
                    mailbox.push(frame.clone());
                }
            }
        }
        if frame.route.everyone || !frame.route.private {
            // An error only means no subscriber without topics is connected.
            let _ = tx.send(frame);
        }
    }

    /// Ends every stream: the broadcast channel closes, and so does every mailbox.
    pub(crate) fn close(&mut self) {
        self.tx = None;
        for mailbox in self.index.all() {
            mailbox.close();
        }
    }

    /// Places an entry read from the event log, unless it is at or before the last one.
    pub(crate) fn push_entry(&mut self, frame: Frame, config: &Config) {
        if frame.id.epoch() == self.epoch && frame.id.position() > self.last_id.position() {
            self.push(frame, config);
        }
    }

    /// Starts reading the event log's stream of epoch `at.epoch()` after `at`. A new epoch
    /// empties the local history (its ids are meaningless in the new stream); after the first
    /// one, connected subscribers are reset too, since what they have is gone from the store.
    pub(crate) fn start_epoch(
        &mut self,
        at: EventId,
        config: &Config,
        counters: &Counters,
    ) -> bool {
        let changed = self.epoch != at.epoch();
        let reset = changed && self.log_started;
        self.epoch = at.epoch();
        self.last_id = at;
        self.log_started = true;
        if changed {
            self.frames.clear();
            self.bytes = 0;
        }
        if reset {
            self.reset_live(ResetReason::NewEpoch, config, counters);
        }
        reset
    }

    /// Sends every live subscriber a reset, and empties the history so that no client
    /// resumes across what was lost.
    pub(crate) fn reset_live(&mut self, reason: ResetReason, config: &Config, counters: &Counters) {
        // Counted before the reset is sent: whoever sees the reset sees the count.
        counters.reset(reason);
        self.frames.clear();
        self.bytes = 0;
        let id = self.last_id;
        let mut frame = Frame::reset(id, reason, config.format);
        if config.compress {
            frame.share_deflated();
        }
        self.last_seq += 1;
        frame.seq = self.last_seq;
        self.deliver(frame);
    }

    /// Where the client that last saw `id` resumes.
    fn resolve(&self, id: EventId, log: Option<&dyn Engine>) -> Resume {
        let current = self.last_seq;
        if id.epoch() != self.epoch {
            return Resume::Reset(ResetReason::Stale);
        }
        let Some(log) = log else {
            let oldest = self.frames.front().map_or(current + 1, |f| f.seq);
            return match id.seq() {
                _ if id.entry_parts().is_some() => Resume::Reset(ResetReason::Stale),
                seq if seq > current => Resume::Reset(ResetReason::Ahead),
                seq if seq + 1 >= oldest => Resume::After(seq, id),
                _ => Resume::Reset(ResetReason::TooOld),
            };
        };
        let pos = id.position();
        if pos == self.last_id.position() {
            return Resume::After(current, id);
        }
        if pos > self.last_id.position() {
            return if log.may_be_ahead(id, self.last_id) {
                Resume::Ahead(id)
            } else {
                Resume::Reset(ResetReason::Ahead)
            };
        }
        match self.frames.binary_search_by(|f| f.id.position().cmp(&pos)) {
            Ok(i) => Resume::After(self.frames[i].seq, id),
            Err(_) => Resume::Log(ReplayFrom::After(id)),
        }
    }

    /// A new subscriber resuming after `last_event_id`; `None` once shut down.
    pub(crate) fn start(
        &mut self,
        last_event_id: LastEventId,
        filter: Filter,
        config: &Config,
        log: Option<&dyn Engine>,
    ) -> Option<Subscription> {
        let tx = self.tx.as_ref()?;
        let live = if filter.selectors.is_some() {
            let mailbox = Arc::new(Mailbox::new(filter));
            let id = self.index.insert(mailbox.clone());
            Live::Mailbox(mailbox, id)
        } else {
            Live::Broadcast(tx.subscribe(), filter)
        };
        let current = self.last_seq;
        let current_id = self.last_id;
        let resume = match last_event_id {
            LastEventId::None => Resume::Fresh,
            LastEventId::Malformed => Resume::Reset(ResetReason::MalformedId),
            LastEventId::After(id) => self.resolve(id, log),
            // With an engine, the store holds at least what the history does.
            LastEventId::Oldest if log.is_some() => Resume::Log(ReplayFrom::Oldest),
            LastEventId::Oldest => self.resolve(self.before_oldest(), None),
        };
        // Room for the preamble alone: an idle stream keeps this queue, and the default first
        // growth (to four frames) would cost each one 96 bytes more.
        let mut pending = VecDeque::with_capacity(1);
        let preamble_id = match resume {
            Resume::Fresh => Some(current_id),
            Resume::After(after, _) => (after == current).then_some(current_id),
            _ => None,
        };
        pending.push_back(encode::preamble(config.retry, preamble_id));
        if let Resume::Reset(reason) = resume {
            pending.push_back(super::frame::reset_bytes(current_id, reason, config.format));
        }
        // A resume from the history is not copied here, under the publish lock: the stream
        // reads it a batch per poll, so a client that never reads costs one batch at most.
        let (last_seq, last_id) = match resume {
            Resume::After(after, id) => (after, id),
            _ => (current, current_id),
        };
        Some(Subscription {
            live,
            pending,
            last_seq,
            last_id,
            catch_up: last_seq < current,
            replay_from: match resume {
                Resume::Log(from) => Some(from),
                _ => None,
            },
            floor: match resume {
                Resume::Ahead(id) => Some(id),
                _ => None,
            },
            resume,
        })
    }

    /// Hands over what a subscriber that last saw `after` missed, up to `budget` bytes and
    /// [`MAX_SCAN`] frames (the publish lock is held for that long only), or says it is gone
    /// (the caller sends the reset). Frames up to `floor` were seen by the client on another
    /// instance: skipped. Frames, not bytes: the stream encodes them for its client (gzip)
    /// after the lock.
    pub(crate) fn catch_up(
        &self,
        after: u64,
        missed: &mut Vec<Frame>,
        wanted: Wanted<'_>,
        budget: usize,
    ) -> CatchUp {
        let current = self.last_seq;
        let last_id = self.last_id;
        let oldest = self.frames.front().map_or(current + 1, |f| f.seq);
        if after + 1 < oldest {
            return CatchUp::Reset {
                last_seq: current,
                last_id,
            };
        }
        let mut queued = 0;
        let mut read: Option<&Frame> = None;
        let mut trailing_skipped = false;
        for (scanned, frame) in self.frames_after(after).enumerate() {
            if queued >= budget || scanned >= MAX_SCAN {
                break;
            }
            read = Some(frame);
            let seen = wanted.floor.is_some_and(|floor| {
                frame.id.epoch() == floor.epoch() && frame.id.position() <= floor.position()
            });
            if !seen && wanted.filter.wants(&frame.route) {
                queued += frame.bytes.len();
                missed.push(frame.clone());
                trailing_skipped = false;
            } else {
                trailing_skipped = true;
            }
        }
        match read {
            Some(frame) if frame.seq < current => CatchUp::Partial {
                last_seq: frame.seq,
                last_id: frame.id,
            },
            _ => CatchUp::Complete {
                last_seq: current,
                last_id,
                trailing_skipped,
            },
        }
    }
}

/// Which frames a subscriber wants from the history.
#[derive(Clone, Copy)]
pub(crate) struct Wanted<'a> {
    pub(crate) filter: &'a Filter,
    /// Seen by the client already (on another instance), up to this id.
    pub(crate) floor: Option<EventId>,
}

/// Most frames one catch-up call looks at, whether the subscriber wants them or not.
const MAX_SCAN: usize = 4096;
