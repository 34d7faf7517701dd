//! The outbox every engine publishes from: events published on this instance, waiting for
//! the store, in order, bounded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

/// One event waiting for the store, already in the engine's form `T`.
#[derive(Clone)]
pub(crate) struct Outgoing<T> {
    /// Its place in this instance's order; 0 is the reset marker's.
    pub(crate) ticket: u64,
    pub(crate) queued_at: Instant,
    pub(crate) item: T,
}

/// A bounded queue: publishing never waits for the store, and an outage longer than the queue
/// drops the oldest events, counted, so a reset marker can follow them.
pub(crate) struct Outbox<T> {
    cap: usize,
    inner: Mutex<Queue<T>>,
    /// Events dropped, in all: [`EngineStats::outbox_dropped`](super::EngineStats::outbox_dropped).
    dropped: AtomicU64,
}

struct Queue<T> {
    events: VecDeque<Outgoing<T>>,
    next_ticket: u64,
    /// Events dropped since the last reset marker was sent.
    lost: u64,
}

impl<T: Clone> Outbox<T> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Mutex::new(Queue {
                events: VecDeque::new(),
                next_ticket: 1,
                lost: 0,
            }),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // Every critical section leaves the queue consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Events dropped since the outbox was made (relaxed: a total read on its own).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts `events` the store refused or that were never sent, as dropped.
    pub(crate) fn count_dropped(&self, events: u64) {
        self.dropped.fetch_add(events, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Queues `item`; when full, drops the oldest event first.
    pub(crate) fn push(&self, item: T) {
        let mut queue = self.lock();
        if queue.events.len() >= self.cap {
            queue.events.pop_front();
            queue.lost += 1;
            self.count_dropped(1);
            if queue.lost == 1 || queue.lost.is_power_of_two() {
                tracing::warn!(
                    capacity = self.cap,
                    dropped = queue.lost,
                    "sse outbox full while the event store is unreachable; dropped the oldest event"
                );
            }
        }
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.events.push_back(Outgoing {
            ticket,
            queued_at: Instant::now(),
            item,
        });
        crate::observe::engine_outbox(queue.events.len());
    }

    /// Queues `item` as ticket `ticket`, given by the caller in increasing order (a relay's
    /// positions); one at or below the last queued is already there and is ignored. Never
    /// drops: the caller keeps the queue within bounds.
    #[cfg_attr(
        not(all(
            any(feature = "sqlite", feature = "postgres"),
            any(feature = "redis", feature = "nats")
        )),
        allow(dead_code)
    )]
    pub(crate) fn push_ticketed(&self, ticket: u64, item: T) {
        let mut queue = self.lock();
        if ticket < queue.next_ticket {
            return;
        }
        queue.next_ticket = ticket + 1;
        queue.events.push_back(Outgoing {
            ticket,
            queued_at: Instant::now(),
            item,
        });
        crate::observe::engine_outbox(queue.events.len());
    }

    /// A copy of the next `max` events to send (they stay queued until acknowledged), and how
    /// many were lost since the last reset marker.
    pub(crate) fn peek(&self, max: usize) -> (Vec<Outgoing<T>>, u64) {
        let queue = self.lock();
        (queue.events.iter().take(max).cloned().collect(), queue.lost)
    }

    /// Removes the events up to `ticket` (some may have been dropped meanwhile) and counts
    /// `lost` as reported.
    pub(crate) fn ack(&self, ticket: Option<u64>, lost: u64) {
        let mut queue = self.lock();
        queue.lost -= lost.min(queue.lost);
        if let Some(ticket) = ticket {
            while queue.events.front().is_some_and(|o| o.ticket <= ticket) {
                queue.events.pop_front();
            }
        }
    }

    /// Empties the queue, counting what it held as dropped; returns how many.
    pub(crate) fn abandon(&self) -> usize {
        let left = std::mem::take(&mut self.lock().events).len();
        self.count_dropped(left as u64);
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_it() {
        let outbox = Outbox::new(2);
        for i in 0..3 {
            outbox.push(i);
        }
        let (batch, lost) = outbox.peek(10);
        assert_eq!(lost, 1);
        assert_eq!(batch.iter().map(|o| o.ticket).collect::<Vec<_>>(), [2, 3]);
        outbox.ack(Some(2), lost);
        let (batch, lost) = outbox.peek(10);
        assert_eq!((batch.len(), lost), (1, 0));
        assert_eq!(outbox.abandon(), 1);
        assert_eq!(outbox.dropped(), 2);
    }
}
