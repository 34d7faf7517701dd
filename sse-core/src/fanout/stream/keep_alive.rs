//! Keep-alive comments for an idle stream, as a wrapper around any stream of chunks (in the
//! manner of axum's `KeepAliveStream`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

/// A stream that knows its keep-alive period and makes its keep-alive comment: it carries
/// the current id when events after the last one sent were skipped (so that the client's next
/// reconnect starts past them), in the stream's coding.
pub(super) trait Idle {
    /// How long without a write before a keep-alive comment; `None`: never. Asked of the
    /// inner stream (which has the configuration) rather than kept in every stream.
    fn keep_alive(&self) -> Option<Duration>;

    /// The keep-alive comment to write now.
    fn keep_alive_chunk(&mut self) -> Bytes;
}

/// Sends a keep-alive comment after the inner stream's period without a write.
pub(super) struct KeepAlive<S> {
    inner: S,
    timer: Option<Pin<Box<Sleep>>>,
    last_write: Instant,
}

impl<S: Idle> KeepAlive<S> {
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

    pub(super) fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Stream<Item = Bytes> + Idle + Unpin> Stream for KeepAlive<S> {
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
                return Poll::Ready(Some(this.inner.keep_alive_chunk()));
            }
            timer.as_mut().reset(due);
        }
        Poll::Pending
    }
}
