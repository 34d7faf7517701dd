//! One subscriber's stream: preamble and replay, then live events, keep-alive comments,
//! catch-up after lag, and an immediate end on shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::admission::Admission;
use crate::broadcaster::Shared;
use crate::encode;
use crate::filter::Filter;
use crate::history::{CatchUp, Frame};
use crate::EventId;

/// Most bytes queued for actix in one poll. actix's write buffer grows to the largest chunk it
/// was given and keeps that size, so this bounds memory per busy connection.
const MAX_BATCH: usize = 16 * 1024;

/// Frames smaller than this are joined into one chunk (one write instead of many); larger ones
/// are passed on as they are, since copying them costs more than the write saves.
const JOIN_BELOW: usize = 1024;

/// The body of one SSE response: a stream of encoded frames.
///
/// Made by [`Broadcaster::subscribe`](crate::Broadcaster::subscribe); the ready-made endpoint
/// of [`Broadcaster::service`](crate::Broadcaster::service) serves it.
pub struct EventStream {
    shared: Arc<Shared>,
    live: BroadcastStream<Frame>,
    pending: VecDeque<Bytes>,
    last_seq: u64,
    /// The id of the frame at `last_seq`.
    last_id: EventId,
    /// Live frames up to this id were already seen by the client (on another instance).
    floor: Option<EventId>,
    /// Missed events being fetched from the shared store; live frames wait meanwhile.
    replay: Option<Replay>,
    /// Whether events after the last one sent were skipped by the filter: the next keep-alive
    /// then carries the current id.
    skipped: bool,
    /// Fell behind the live channel: frames are being read from the history, a budget per
    /// poll, until it is caught up.
    behind: bool,
    filter: Filter,
    keep_alive: Option<Pin<Box<Sleep>>>,
    last_write: Instant,
    /// When the subscriber's credentials expire.
    expiry: Option<Pin<Box<Sleep>>>,
    done: bool,
    _admission: Option<Admission>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let c = &self.shared.counters;
        c.subscribers.fetch_sub(1, Ordering::Relaxed);
        c.disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

impl EventStream {
    pub(crate) fn new(shared: Arc<Shared>, last_event_id: Option<&str>) -> Option<Self> {
        Self::filtered(shared, last_event_id, Filter::default(), None, None)
    }

    pub(crate) fn filtered(
        shared: Arc<Shared>,
        last_event_id: Option<&str>,
        filter: Filter,
        admission: Option<Admission>,
        expires_at: Option<Instant>,
    ) -> Option<Self> {
        let start = shared.subscribe(last_event_id, &filter)?;
        let replay = start
            .replay_after
            .map(|after| replay(&shared, after, start.last_id));
        let now = Instant::now();
        let keep_alive = shared
            .config
            .keep_alive
            .map(|d| Box::pin(tokio::time::sleep_until(now + d)));
        Some(Self {
            live: BroadcastStream::new(start.rx),
            pending: start.pending,
            last_seq: start.last_seq,
            last_id: start.last_id,
            floor: start.floor,
            replay,
            skipped: false,
            behind: false,
            filter,
            keep_alive,
            last_write: now,
            expiry: expires_at.map(|at| Box::pin(tokio::time::sleep_until(at))),
            done: false,
            _admission: admission,
            shared,
        })
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.shared.is_closed() {
            this.done = true;
            return Poll::Ready(None);
        }
        if let Some(expiry) = &mut this.expiry {
            if expiry.as_mut().poll(cx).is_ready() {
                this.shared.counters.expired.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("sse subscriber's credentials expired; stream ended");
                this.done = true;
                return Poll::Ready(None);
            }
        }
        if this.replay.is_some() {
            // The preamble first, so the client sees the stream open at once.
            if let Some(chunk) = take_chunk(&mut this.pending) {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(replay) = &mut this.replay {
                let Poll::Ready(result) = replay.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                this.replay = None;
                this.replayed(result);
            }
        }
        // Move whatever is ready into `pending`, then send it as one chunk: under load a
        // subscriber's poll then costs one write, not one per event.
        let mut closed = false;
        let mut queued: usize = this.pending.iter().map(Bytes::len).sum();
        while queued < MAX_BATCH {
            if this.behind {
                let budget = MAX_BATCH - queued;
                this.last_seq = match this.shared.catch_up(
                    this.last_seq,
                    &mut this.pending,
                    &this.filter,
                    budget,
                ) {
                    CatchUp::Partial { last_seq, last_id } => {
                        this.last_id = last_id.unwrap_or(this.last_id);
                        last_seq
                    }
                    CatchUp::Complete { last_seq, last_id }
                    | CatchUp::Reset { last_seq, last_id } => {
                        this.behind = false;
                        this.last_id = last_id;
                        last_seq
                    }
                };
                this.skipped = true;
                queued = this.pending.iter().map(Bytes::len).sum();
                continue;
            }
            match Pin::new(&mut this.live).poll_next(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Already sent from the history (replay or catch-up).
                    if frame.seq > this.last_seq {
                        this.last_seq = frame.seq;
                        this.last_id = frame.id;
                        if let Some(floor) = this.floor {
                            if frame.id.epoch() == floor.epoch()
                                && frame.id.position() <= floor.position()
                            {
                                continue;
                            }
                            this.floor = None;
                        }
                        // Per subscriber, only a look at the shared route: no encoding.
                        if this.filter.wants(&frame.route) {
                            this.skipped = false;
                            queued += frame.bytes.len();
                            this.pending.push_back(frame.bytes);
                        } else {
                            this.skipped = true;
                        }
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    this.behind = true;
                    this.floor = None;
                }
                Poll::Ready(None) => {
                    closed = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if let Some(chunk) = take_chunk(&mut this.pending) {
            this.last_write = Instant::now();
            return Poll::Ready(Some(Ok(chunk)));
        }
        if closed {
            this.done = true;
            return Poll::Ready(None);
        }
        if let (Some(every), Some(timer)) = (this.shared.config.keep_alive, &mut this.keep_alive) {
            // The timer is re-armed lazily (here, not on every write), so a busy stream costs
            // no timer updates.
            while timer.as_mut().poll(cx).is_ready() {
                let due = this.last_write + every;
                if Instant::now() >= due {
                    this.last_write = Instant::now();
                    timer.as_mut().reset(this.last_write + every);
                    if std::mem::take(&mut this.skipped) {
                        return Poll::Ready(Some(Ok(encode::keep_alive_with_id(this.last_id))));
                    }
                    return Poll::Ready(Some(Ok(Bytes::from_static(encode::KEEP_ALIVE))));
                }
                timer.as_mut().reset(due);
            }
        }
        Poll::Pending
    }
}

/// Missed events fetched from the shared store, or why they cannot be.
type Replay = Pin<Box<dyn Future<Output = Result<Vec<Frame>, &'static str>> + Send + 'static>>;

#[cfg(feature = "redis")]
fn replay(shared: &Arc<Shared>, after: EventId, upto: EventId) -> Replay {
    let redis = shared.redis.clone();
    // Replayed frames are queued at once: bounded in count, whatever the history holds.
    let max = shared.config.history.min(crate::redis::MAX_REPLAY);
    Box::pin(async move {
        match redis {
            Some(redis) => redis.replay(after, upto, max).await,
            None => Err("Last-Event-ID is from another server instance or an earlier run"),
        }
    })
}

#[cfg(not(feature = "redis"))]
fn replay(_: &Arc<Shared>, _: EventId, _: EventId) -> Replay {
    Box::pin(std::future::ready(Err(
        "Last-Event-ID is from another server instance or an earlier run",
    )))
}

impl EventStream {
    /// Queues the replayed events (those for this subscriber), or a reset.
    fn replayed(&mut self, result: Result<Vec<Frame>, &'static str>) {
        let counters = &self.shared.counters;
        match result {
            Ok(frames) => {
                // Each replaying subscriber decodes and encodes its own copy: a reconnect, not
                // the per-event hot path.
                let mut last_sent = None;
                for frame in frames.into_iter().filter(|f| self.filter.wants(&f.route)) {
                    last_sent = Some(frame.id);
                    self.pending.push_back(frame.bytes);
                }
                if last_sent != Some(self.last_id) {
                    self.pending.push_back(encode::id_only(self.last_id));
                }
                counters.resumed.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                let format = self.shared.config.format;
                self.pending
                    .push_back(encode::reset(self.last_id, reason, format));
                counters.resets.fetch_add(1, Ordering::Relaxed);
                tracing::info!(reason, "sse subscriber cannot resume; sent reset");
            }
        }
    }
}

/// The next chunk for actix: a run of small frames joined into one, or one large frame as it
/// is (a reference count, no copy).
fn take_chunk(pending: &mut VecDeque<Bytes>) -> Option<Bytes> {
    let first = pending.pop_front()?;
    let joinable = |b: &Bytes| b.len() < JOIN_BELOW;
    if !joinable(&first) || !pending.front().is_some_and(joinable) {
        return Some(first);
    }
    let mut buf = BytesMut::with_capacity(MAX_BATCH.min(first.len() * (pending.len() + 1)));
    buf.extend_from_slice(&first);
    while let Some(next) = pending.front() {
        if !joinable(next) || buf.len() + next.len() > MAX_BATCH {
            break;
        }
        buf.extend_from_slice(next);
        pending.pop_front();
    }
    Some(buf.freeze())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use crate::{Broadcaster, EventId};

    /// Collects the events (not comments or the preamble) in `chunks`, as (id, name) pairs.
    fn events(chunks: &[bytes::Bytes]) -> Vec<(EventId, String)> {
        let text: String = chunks.iter().map(|c| String::from_utf8_lossy(c)).collect();
        text.split("\n\n")
            .filter_map(|frame| {
                let mut id = None;
                let mut name = None;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    }
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_owned());
                    }
                }
                Some((id?, name?))
            })
            .collect()
    }

    async fn drain(stream: &mut super::EventStream) -> Vec<bytes::Bytes> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(50), stream.next()).await
        {
            out.push(chunk);
        }
        out
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_caught_up_from_history() {
        let b = Broadcaster::builder()
            .history(5000)
            .keep_alive(None)
            .build();
        let mut stream = b.subscribe(None).unwrap();
        // Far more than the channel holds, without the subscriber reading.
        for i in 0..3000 {
            b.publish("e", &i).unwrap();
        }
        let got = events(&drain(&mut stream).await);
        let seqs: Vec<u64> = got.iter().map(|(id, _)| id.seq()).collect();
        assert_eq!(seqs, (1..=3000).collect::<Vec<_>>());
        assert_eq!(b.stats().caught_up, 1);
        assert_eq!(b.stats().resets, 0);
        // And live afterwards.
        b.publish("e", &"live").unwrap();
        let got = events(&drain(&mut stream).await);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.seq(), 3001);
    }

    #[tokio::test]
    async fn catch_up_after_lag_keeps_private_events_private() {
        let b = Broadcaster::builder()
            .history(5000)
            .keep_alive(None)
            .build();
        let filter = crate::filter::Filter {
            selectors: Some(Box::new(["t/*".parse().unwrap()])),
            grants: Box::new(["t/mine".parse().unwrap()]),
            client_id: None,
        };
        let mut stream =
            super::EventStream::filtered(b.shared.clone(), None, filter, None, None).unwrap();
        let secret = crate::Delivery::to(["t/other"]).private();
        let mine = crate::Delivery::to(["t/mine"]).private();
        for i in 0..3000 {
            match i % 3 {
                0 => b.publish_with(&secret, "secret", &i),
                1 => b.publish_with(&mine, "mine", &i),
                _ => b.publish_to(["t/public"], "public", &i),
            }
            .unwrap();
        }
        let got = events(&drain(&mut stream).await);
        assert_eq!(b.stats().caught_up, 1, "the subscriber lagged");
        assert_eq!(got.len(), 2000);
        assert!(got.iter().all(|(_, name)| name != "secret"), "{got:?}");
    }

    #[tokio::test]
    async fn a_subscriber_behind_the_history_gets_a_reset_then_live_events() {
        let b = Broadcaster::builder().history(16).keep_alive(None).build();
        let mut stream = b.subscribe(None).unwrap();
        for i in 0..100 {
            b.publish("e", &i).unwrap();
        }
        let got = events(&drain(&mut stream).await);
        assert_eq!(got[0].1, crate::RESET_EVENT, "{got:?}");
        assert_eq!(
            got[0].0.seq(),
            100,
            "the reset carries the id to resume from"
        );
        assert_eq!(got.len(), 1, "nothing stale after the reset: {got:?}");
        assert_eq!(b.stats().resets, 1);
        b.publish("e", &"live").unwrap();
        let got = events(&drain(&mut stream).await);
        assert_eq!(
            got.iter().map(|(id, _)| id.seq()).collect::<Vec<_>>(),
            [101]
        );
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream_at_once() {
        let b = Broadcaster::new();
        let mut stream = b.subscribe(None).unwrap();
        assert!(stream.next().await.is_some(), "preamble");
        for i in 0..10 {
            b.publish("e", &i).unwrap();
        }
        b.shutdown();
        let end = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
        assert!(
            matches!(end, Ok(None)),
            "queued events are not flushed after shutdown"
        );
        drop(stream);
        assert_eq!(b.stats().subscribers, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_only_when_idle() {
        let b = Broadcaster::builder()
            .keep_alive(Duration::from_secs(5))
            .build();
        let mut stream = b.subscribe(None).unwrap();
        stream.next().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        b.publish("e", &1).unwrap();
        let chunk = stream.next().await.unwrap().unwrap();
        assert!(chunk.starts_with(b"id: "));
        // 3 s after the event, not 5 s after connecting: still quiet.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(futures_util::FutureExt::now_or_never(stream.next()).is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        let chunk = stream.next().await.unwrap().unwrap();
        assert_eq!(&chunk[..], crate::encode::KEEP_ALIVE);
    }

    #[tokio::test]
    async fn ready_frames_are_sent_as_one_chunk() {
        let b = Broadcaster::builder().keep_alive(None).build();
        let mut stream = b.subscribe(None).unwrap();
        stream.next().await.unwrap().unwrap();
        for i in 0..10 {
            b.publish("e", &i).unwrap();
        }
        let chunk = stream.next().await.unwrap().unwrap();
        assert_eq!(events(&[chunk]).len(), 10);
    }
}
