//! Keep-alive comments for an idle stream, as a wrapper around any stream of chunks (in the
//! manner of axum's `KeepAliveStream`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use crate::wire::{encode, EventId};

/// A stream that knows its keep-alive period, and whether events after the last one it sent
/// were skipped, so that the keep-alive can carry the current id and the client's next
/// reconnect starts past them.
pub(super) trait Skipped {
    /// How long without a write before a keep-alive comment; `None`: never. Asked of the
    /// inner stream (which has the configuration) rather than kept in every stream.
    fn keep_alive(&self) -> Option<Duration>;

    /// The id to carry, once, when events were skipped since the last write.
    fn take_skipped(&mut self) -> Option<EventId>;
}

/// Sends a keep-alive comment after the inner stream's period without a write.
pub(super) struct KeepAlive<S> {
    inner: S,
    timer: Option<Pin<Box<Sleep>>>,
    last_write: Instant,
}

impl<S: Skipped> KeepAlive<S> {
    pub(super) fn new(inner: S) -> Self {
        let now = Instant::now();
        Self {
            timer: (inner.keep_alive()).map(|d| Box::pin(tokio::time::sleep_until(now + d))),
            inner,
            last_write: now,
        }
    }
}

impl<S> KeepAlive<S> {
    #[cfg(test)]
    pub(super) fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Stream<Item = Bytes> + Skipped + Unpin> Stream for KeepAlive<S> {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(chunk)) => {
                this.last_write = Instant::now();
                return Poll::Ready(Some(chunk));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let (Some(every), Some(timer)) = (this.inner.keep_alive(), &mut this.timer) else {
            return Poll::Pending;
        };
        // The timer is re-armed lazily (here, not on every write), so a busy stream costs no
        // timer updates.
        while timer.as_mut().poll(cx).is_ready() {
            let due = this.last_write + every;
            if Instant::now() >= due {
                this.last_write = Instant::now();
                timer.as_mut().reset(this.last_write + every);
                return Poll::Ready(Some(match this.inner.take_skipped() {
                    Some(id) => encode::keep_alive_with_id(id),
                    None => Bytes::from_static(encode::KEEP_ALIVE),
                }));
            }
            timer.as_mut().reset(due);
        }
        Poll::Pending
    }
}
