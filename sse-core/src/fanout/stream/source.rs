//! One subscriber's frames: the preamble and what it missed (from the history or the event
//! log), then live frames that its filter wants, joined into chunks.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::batch::MAX_BATCH;
use super::keep_alive::Idle;
use super::queue::Queue;
use crate::engine::{
    Body, ReplayError, ReplayFrom, ReplayFuture, ReplayPage, ResetReason, Senders,
};
use crate::fanout::frame::Frame;
use crate::fanout::history::{CatchUp, Live, Subscription, Wanted};
use crate::fanout::hub::Hub;
use crate::fanout::index::SubId;
use crate::fanout::mailbox::{Mailbox, Received};
use crate::topic::Filter;
use crate::wire::gzip::Coding;
use crate::wire::{encode, EventId};

pub(super) struct Source {
    shared: Arc<Hub>,
    live: LiveFrames,
    queue: Queue,
    last_seq: u64,
    /// The id of the frame at `last_seq`.
    last_id: EventId,
    /// Live frames up to this id were already seen by the client (on another instance).
    /// Boxed, like `replay`: rare, and every open stream would carry the space.
    floor: Option<Box<EventId>>,
    /// Missed events being fetched from the event log, a page at a time as the client reads;
    /// live frames wait meanwhile.
    replay: Option<Box<Replay>>,
    /// Whether events after the last one sent were skipped by the filter: the next keep-alive
    /// then carries the current id.
    skipped: bool,
    /// Reading from the history, a budget per poll, until caught up: after a resume, or after
    /// falling behind the live channel.
    behind: bool,
    /// Behind because of a resume (counted as a resume, not a catch-up).
    resuming: bool,
}

/// A subscriber's live frames, and its filter: the broadcast channel (no topic chosen) or its
/// mailbox in the subscription index (which holds the filter). A broadcast subscriber's filter
/// is boxed only when it is not the plain "every public event" (it names its client).
enum LiveFrames {
    Broadcast(BroadcastStream<Frame>, Option<Box<Filter>>),
    Mailbox(Arc<Mailbox>, SubId),
}

/// The filter of a subscriber that chose no topic and named no client.
static EVERY_PUBLIC_EVENT: LazyLock<Filter> = LazyLock::new(Filter::default);

/// One live frame, a lag, or the end.
enum LiveItem {
    Frame(Frame),
    Lagged,
    Closed,
    Pending,
}

impl LiveFrames {
    fn filter(&self) -> &Filter {
        match self {
            LiveFrames::Broadcast(_, Some(filter)) => filter,
            LiveFrames::Broadcast(_, None) => &EVERY_PUBLIC_EVENT,
            LiveFrames::Mailbox(mailbox, _) => &mailbox.filter,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> LiveItem {
        match self {
            LiveFrames::Broadcast(rx, _) => match Pin::new(rx).poll_next(cx) {
                Poll::Ready(Some(Ok(frame))) => LiveItem::Frame(frame),
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => LiveItem::Lagged,
                Poll::Ready(None) => LiveItem::Closed,
                Poll::Pending => LiveItem::Pending,
            },
            LiveFrames::Mailbox(mailbox, _) => match mailbox.poll_recv(cx) {
                Poll::Ready(Some(Received::Frame(frame))) => LiveItem::Frame(frame),
                Poll::Ready(Some(Received::Lagged)) => LiveItem::Lagged,
                Poll::Ready(None) => LiveItem::Closed,
                Poll::Pending => LiveItem::Pending,
            },
        }
    }
}

/// Entries one replay page asks the event log for.
const REPLAY_PAGE: usize = 256;

/// A `Last-Event-ID` replay from the event log, a page at a time.
struct Replay {
    page: ReplayFuture,
    /// Where the replay ends: the live stream goes on after it.
    upto: EventId,
    /// The last replayed event was for this subscriber.
    last_sent: bool,
}

/// The replay page from `from`, from the event log.
fn replay_page(
    shared: &Hub,
    from: ReplayFrom,
    upto: EventId,
    seen: Option<Senders>,
) -> ReplayFuture {
    match shared.log() {
        Some(log) => log.replay(from, upto, REPLAY_PAGE, seen),
        None => Box::pin(std::future::ready(Err(ResetReason::Stale))),
    }
}

impl Source {
    pub(super) fn new(shared: Arc<Hub>, start: Subscription, coding: Coding) -> Self {
        let replay = start.replay_from.map(|from| {
            Box::new(Replay {
                page: replay_page(&shared, from, start.last_id, None),
                upto: start.last_id,
                last_sent: false,
            })
        });
        Self {
            live: match start.live {
                Live::Broadcast(rx, filter) => {
                    let plain = filter.client_id.is_none() && filter.grants.is_empty();
                    let filter = (!plain).then(|| Box::new(filter));
                    LiveFrames::Broadcast(BroadcastStream::new(rx), filter)
                }
                Live::Mailbox(mailbox, id) => LiveFrames::Mailbox(mailbox, id),
            },
            queue: Queue::new(start.pending, coding),
            last_seq: start.last_seq,
            last_id: start.last_id,
            floor: start.floor.map(Box::new),
            replay,
            skipped: false,
            behind: start.catch_up,
            resuming: start.catch_up,
            shared,
        }
    }

    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.queue.queued()
    }

    /// The gzip trailer, once, when the stream ends cleanly.
    pub(super) fn finish(&mut self) -> Option<Bytes> {
        self.queue.finish()
    }

    fn queue(&mut self, bytes: Bytes) {
        self.queue.push(bytes);
    }

    fn take_chunk(&mut self) -> Option<Bytes> {
        self.queue.take_chunk()
    }

    /// Goes on with the replay from the event log, if one is under way: what is queued is
    /// sent first (the preamble at once, so the client sees the stream open), then the next
    /// page is fetched. `Ready(None)` once there is no replay (any more).
    fn poll_replay(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.replay.is_none() {
            return Poll::Ready(None);
        }
        if let Some(chunk) = self.take_chunk() {
            return Poll::Ready(Some(chunk));
        }
        let Some(replay) = &mut self.replay else {
            return Poll::Ready(None);
        };
        let Poll::Ready(result) = replay.page.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        self.replayed(result);
        match self.take_chunk() {
            Some(chunk) => Poll::Ready(Some(chunk)),
            None if self.replay.is_some() => {
                // An empty page (all for others): fetch the next one now.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }

    /// Queues one replayed page (the events for this subscriber) and asks for the next, or
    /// ends the replay: with an id-only frame when its last events were not for this
    /// subscriber, or with a reset when the log cannot serve it.
    fn replayed(&mut self, result: Result<ReplayPage, ReplayError>) {
        let Some(mut replay) = self.replay.take() else {
            return;
        };
        let shared = self.shared.clone();
        let counters = &shared.counters;
        match result {
            Ok(mut page) => {
                let format = shared.config.format;
                for entry in std::mem::take(&mut page.entries) {
                    replay.last_sent = entry.route().is_none_or(|r| self.live.filter().wants(r));
                    // Encoded only when this subscriber wants it (a replay is one client's).
                    if replay.last_sent {
                        if let Body::Reset(reason) = entry.body {
                            counters.relayed_reset(reason);
                        }
                        self.queue(Frame::encode(entry, format).bytes);
                    }
                }
                match page.reached {
                    Some(reached) if reached.position() < replay.upto.position() => {
                        replay.page = replay_page(
                            &shared,
                            ReplayFrom::After(reached),
                            replay.upto,
                            Some(page.seen),
                        );
                        self.replay = Some(replay);
                    }
                    _ => {
                        if !replay.last_sent {
                            self.queue(encode::id_only(self.last_id));
                        }
                        counters.resumed();
                    }
                }
            }
            Err(reason) => {
                let format = shared.config.format;
                self.queue(crate::fanout::frame::reset_bytes(
                    self.last_id,
                    reason,
                    format,
                ));
                counters.reset(reason);
                tracing::debug!(
                    reason = reason.label(),
                    "sse subscriber cannot resume; sent reset"
                );
            }
        }
    }

    /// Reads what it missed from the history, up to the batch budget.
    fn catch_up(&mut self) {
        let budget = MAX_BATCH.saturating_sub(self.queue.queued());
        let wanted = Wanted {
            filter: self.live.filter(),
            floor: self.floor.as_deref().copied(),
        };
        let mut missed = Vec::new();
        let outcome = self
            .shared
            .catch_up(self.last_seq, &mut missed, wanted, budget);
        // Queued after the publish lock: a gzip stream may deflate them here.
        for frame in missed {
            self.queue.push_frame(frame);
        }
        let counters = &self.shared.counters;
        let (last_seq, last_id) = match outcome {
            CatchUp::Partial { last_seq, last_id } => (last_seq, last_id),
            CatchUp::Complete {
                last_seq,
                last_id,
                trailing_skipped,
            } => {
                if self.resuming {
                    // Move the client's id past the last missed events that were not for it,
                    // so that its next reconnect does not look at them again.
                    if trailing_skipped {
                        self.queue(encode::id_only(last_id));
                    }
                } else {
                    self.skipped = true;
                    counters.caught_up();
                    tracing::debug!("sse subscriber fell behind; caught up from history");
                }
                self.behind = false;
                self.resuming = false;
                (last_seq, last_id)
            }
            // Counted by `Hub::catch_up`.
            CatchUp::Reset { last_seq, last_id } => {
                let format = self.shared.config.format;
                self.queue(crate::fanout::frame::reset_bytes(
                    last_id,
                    ResetReason::FellBehind,
                    format,
                ));
                tracing::warn!(
                    history = self.shared.config.history,
                    "sse subscriber fell behind beyond the history; sent reset"
                );
                self.behind = false;
                self.resuming = false;
                (last_seq, last_id)
            }
        };
        self.last_seq = last_seq;
        self.last_id = last_id;
        if self.floor.as_deref().is_some_and(|floor| {
            last_id.epoch() != floor.epoch() || last_id.position() >= floor.position()
        }) {
            self.floor = None;
        }
    }

    /// Takes one live frame: queued if the filter wants it and the client has not seen it.
    fn take_live(&mut self, frame: Frame) {
        // Already sent from the history (replay or catch-up).
        if frame.seq <= self.last_seq {
            return;
        }
        self.last_seq = frame.seq;
        self.last_id = frame.id;
        if let Some(floor) = self.floor.as_deref() {
            if frame.id.epoch() == floor.epoch() && frame.id.position() <= floor.position() {
                return;
            }
            self.floor = None;
        }
        // Per subscriber, only a look at the shared route: no encoding.
        if self.live.filter().wants(&frame.route) {
            self.skipped = false;
            self.queue.push_frame(frame);
        } else {
            self.skipped = true;
        }
    }

    /// Moves whatever is ready into the queue, up to the batch budget; `true` when the live
    /// channel closed (shutdown).
    fn fill(&mut self, cx: &mut Context<'_>) -> bool {
        while self.queue.queued() < MAX_BATCH {
            if self.behind {
                self.catch_up();
                if self.behind {
                    // One catch-up read per poll: a client that wants little of a long
                    // history must not hold this thread (and the publish lock, a read at a
                    // time) for all of it. It goes on at the next poll.
                    cx.waker().wake_by_ref();
                    break;
                }
                continue;
            }
            match self.live.poll(cx) {
                LiveItem::Frame(frame) => self.take_live(frame),
                // The floor is kept: the history may hold events the client already has.
                LiveItem::Lagged => self.behind = true,
                LiveItem::Closed => return true,
                LiveItem::Pending => break,
            }
        }
        false
    }
}

impl Stream for Source {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        if let Poll::Ready(Some(chunk)) = this.poll_replay(cx) {
            return Poll::Ready(Some(chunk));
        }
        if this.replay.is_some() {
            return Poll::Pending;
        }
        let closed = this.fill(cx);
        if let Some(chunk) = this.take_chunk() {
            return Poll::Ready(Some(chunk));
        }
        if closed {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl Idle for Source {
    fn keep_alive(&self) -> Option<Duration> {
        self.shared.config.keep_alive
    }

    fn keep_alive_chunk(&mut self) -> Bytes {
        let skipped = self.take_skipped();
        self.queue.keep_alive(skipped)
    }
}

impl Source {
    /// The id to carry, once, when events were skipped since the last write, so that the
    /// client's next reconnect starts past them.
    fn take_skipped(&mut self) -> Option<EventId> {
        if std::mem::take(&mut self.skipped) {
            return Some(self.last_id);
        }
        // A selective subscriber is never woken for the events it does not want: when it is
        // idle, everything published so far is behind it, and its next reconnect can start
        // from the current id. Mailboxes are filled under the publish lock, so an empty one
        // read under it means nothing for it is on its way.
        let LiveFrames::Mailbox(mailbox, _) = &self.live else {
            return None;
        };
        if self.behind || self.replay.is_some() || !self.queue.is_empty() {
            return None;
        }
        let state = self.shared.lock();
        if state.last_seq <= self.last_seq || !mailbox.is_empty() {
            return None;
        }
        self.last_seq = state.last_seq;
        self.last_id = state.last_id;
        Some(self.last_id)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let LiveFrames::Mailbox(_, id) = &self.live {
            self.shared.unsubscribe(*id);
        }
        self.shared.counters.disconnected();
    }
}
