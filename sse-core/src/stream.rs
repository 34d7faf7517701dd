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

use crate::broadcaster::{CatchUp, Frame, Shared};
use crate::encode;

/// Largest chunk handed to actix in one poll when several frames are ready at once.
const MAX_BATCH: usize = 64 * 1024;

pin_project_lite::pin_project! {
    /// The body of one SSE response: a stream of encoded frames.
    ///
    /// Made by [`Broadcaster::subscribe`](crate::Broadcaster::subscribe); the ready-made
    /// endpoint of [`Broadcaster::service`](crate::Broadcaster::service) serves it.
    pub struct EventStream {
        shared: Arc<Shared>,
        #[pin]
        live: BroadcastStream<Frame>,
        pending: VecDeque<Bytes>,
        last_seq: u64,
        #[pin]
        keep_alive: Option<Sleep>,
        last_write: Instant,
        done: bool,
    }

    impl PinnedDrop for EventStream {
        fn drop(this: Pin<&mut Self>) {
            let c = &this.shared.counters;
            c.subscribers.fetch_sub(1, Ordering::Relaxed);
            c.disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl EventStream {
    pub(crate) fn new(shared: Arc<Shared>, last_event_id: Option<&str>) -> Option<Self> {
        let start = shared.subscribe(last_event_id)?;
        let now = Instant::now();
        let keep_alive = shared
            .config
            .keep_alive
            .map(|d| tokio::time::sleep_until(now + d));
        Some(Self {
            live: BroadcastStream::new(start.rx),
            pending: start.pending,
            last_seq: start.last_seq,
            keep_alive,
            last_write: now,
            done: false,
            shared,
        })
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if this.shared.is_closed() {
            *this.done = true;
            return Poll::Ready(None);
        }
        // Move whatever is ready into `pending`, then send it as one chunk: under load a
        // subscriber's poll then costs one write, not one per event.
        let mut closed = false;
        let mut queued: usize = this.pending.iter().map(Bytes::len).sum();
        while queued < MAX_BATCH {
            match this.live.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Already sent from the history (replay or catch-up).
                    if frame.seq > *this.last_seq {
                        *this.last_seq = frame.seq;
                        queued += frame.bytes.len();
                        this.pending.push_back(frame.bytes);
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    *this.last_seq = match this.shared.catch_up(*this.last_seq, this.pending) {
                        CatchUp::Complete { last_seq } | CatchUp::Reset { last_seq } => last_seq,
                    };
                    queued = this.pending.iter().map(Bytes::len).sum();
                }
                Poll::Ready(None) => {
                    closed = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if let Some(chunk) = take_chunk(this.pending) {
            *this.last_write = Instant::now();
            return Poll::Ready(Some(Ok(chunk)));
        }
        if closed {
            *this.done = true;
            return Poll::Ready(None);
        }
        if let (Some(every), Some(mut timer)) = (
            this.shared.config.keep_alive,
            this.keep_alive.as_mut().as_pin_mut(),
        ) {
            // The timer is re-armed lazily (here, not on every write), so a busy stream costs
            // no timer updates.
            while timer.as_mut().poll(cx).is_ready() {
                let due = *this.last_write + every;
                if Instant::now() >= due {
                    *this.last_write = Instant::now();
                    timer.as_mut().reset(*this.last_write + every);
                    return Poll::Ready(Some(Ok(Bytes::from_static(encode::KEEP_ALIVE))));
                }
                timer.as_mut().reset(due);
            }
        }
        Poll::Pending
    }
}

/// Joins the queued frames into one chunk (the common single frame is passed on as it is).
fn take_chunk(pending: &mut VecDeque<Bytes>) -> Option<Bytes> {
    match pending.len() {
        0 => None,
        1 => pending.pop_front(),
        _ => {
            let mut buf = BytesMut::with_capacity(pending.iter().map(Bytes::len).sum());
            let mut taken = 0;
            while let Some(b) = pending.front() {
                if taken > 0 && buf.len() + b.len() > MAX_BATCH {
                    break;
                }
                buf.extend_from_slice(b);
                taken += 1;
                pending.pop_front();
            }
            Some(buf.freeze())
        }
    }
}
