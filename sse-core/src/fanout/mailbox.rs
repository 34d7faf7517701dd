//! One selective subscriber's queue of frames: the subscription index delivers here only the
//! events the subscriber wants, so a publish wakes its audience, not everyone.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::frame::Frame;
use crate::topic::Filter;

/// Most frames, and bytes, waiting for one subscriber; past either, the subscriber catches up
/// from the history instead (as a broadcast receiver that lagged), so a subscriber that stops
/// reading holds a bounded amount of memory whatever is published.
const CAPACITY: usize = 1024;
const CAPACITY_BYTES: usize = 256 * 1024;

/// Frames of room an emptied queue may keep. A burst can grow a queue to [`CAPACITY`] frames
/// (about 80 KiB); once drained, or dropped for a lag, the room above this is given back, so a
/// stream that stalled once does not keep its peak for the rest of its life.
const KEPT_CAPACITY: usize = 16;

/// What a subscriber reads next from its mailbox.
pub(crate) enum Received {
    Frame(Frame),
    /// Frames were dropped because it did not read: catch up from the history.
    Lagged,
}

pub(crate) struct Mailbox {
    /// What the subscriber may see: checked at publish, per frame of its audience (and by
    /// its stream, which holds no copy).
    pub(crate) filter: Filter,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    frames: VecDeque<Frame>,
    /// Bytes of `frames`.
    bytes: usize,
    waker: Option<Waker>,
    lagged: bool,
    closed: bool,
}

impl Mailbox {
    pub(crate) fn new(filter: Filter) -> Self {
        Self {
            filter,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the queue consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` and wakes the subscriber (called under the publish lock, so frames
    /// arrive in publish order).
    pub(crate) fn push(&self, frame: Frame) {
        let waker = {
            let mut inner = self.lock();
            if inner.frames.len() >= CAPACITY || inner.bytes + frame.bytes.len() > CAPACITY_BYTES {
                inner.frames = VecDeque::new();
                inner.bytes = 0;
                inner.lagged = true;
            } else {
                inner.bytes += frame.bytes.len();
                inner.frames.push_back(frame);
            }
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends the subscriber's stream (shutdown).
    pub(crate) fn close(&self) {
        let waker = {
            let mut inner = self.lock();
            inner.closed = true;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.frames.is_empty() && !inner.lagged
    }

    /// The next frame, `Lagged`, or `None` once closed.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.lagged) {
            return Poll::Ready(Some(Received::Lagged));
        }
        if let Some(frame) = inner.frames.pop_front() {
            inner.bytes -= frame.bytes.len();
            // Far above the floor (not just above it), so that a queue hovering around it is
            // not reallocated on every drain.
            if inner.frames.is_empty() && inner.frames.capacity() > 4 * KEPT_CAPACITY {
                inner.frames.shrink_to(KEPT_CAPACITY);
            }
            return Poll::Ready(Some(Received::Frame(frame)));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        match &inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;

    use super::*;
    use crate::topic::Route;
    use crate::wire::EventId;

    fn frame(n: u64) -> Frame {
        let route = Arc::new(Route::everyone());
        Frame::new(
            EventId::new(1, n),
            Bytes::from_static(b"data: x\n\n"),
            route,
        )
    }

    fn capacity(mailbox: &Mailbox) -> usize {
        mailbox.lock().frames.capacity()
    }

    fn drain(mailbox: &Mailbox) -> usize {
        let mut cx = Context::from_waker(Waker::noop());
        let mut n = 0;
        while let Poll::Ready(Some(_)) = mailbox.poll_recv(&mut cx) {
            n += 1;
        }
        n
    }

    #[test]
    fn a_stalled_mailbox_gives_its_memory_back() {
        let mailbox = Mailbox::new(Filter::default());
        for n in 0..CAPACITY as u64 {
            mailbox.push(frame(n));
        }
        assert!(capacity(&mailbox) >= CAPACITY);
        // One more: the subscriber lagged; what was queued is dropped, and so is its room.
        mailbox.push(frame(CAPACITY as u64));
        assert!(
            capacity(&mailbox) <= KEPT_CAPACITY,
            "after a lag: {}",
            capacity(&mailbox)
        );
        assert_eq!(drain(&mailbox), 1, "the lag alone");

        for n in 0..CAPACITY as u64 / 2 {
            mailbox.push(frame(n));
        }
        assert!(capacity(&mailbox) >= CAPACITY / 2);
        assert_eq!(drain(&mailbox), CAPACITY / 2);
        assert!(
            capacity(&mailbox) <= KEPT_CAPACITY,
            "drained: {}",
            capacity(&mailbox)
        );
    }
}
