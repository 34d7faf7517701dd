//! The outbox: events published on this instance, waiting for Redis, in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::log::Append;

/// An entry's fields, as `XADD` takes them.
pub(super) type Fields = Vec<(&'static str, String)>;

/// One event waiting for Redis, already serialized.
#[derive(Clone)]
pub(super) struct Outgoing {
    /// Its place in this instance's order; 0 is the reset marker's.
    pub(super) ticket: u64,
    pub(super) queued_at: Instant,
    pub(super) fields: Fields,
}

/// The fields of an event's stream entry.
pub(super) fn fields(event: Append) -> Fields {
    // Topics cannot contain control characters, so a line break separates them safely.
    let mut fields = vec![
        ("n", event.name),
        ("d", event.data),
        ("j", if event.json { "1" } else { "0" }.to_owned()),
        ("t", event.route.topics.join("\n")),
    ];
    if event.route.private {
        fields.push(("p", "1".to_owned()));
    }
    if let Some(origin) = &event.route.origin {
        fields.push(("o", origin.to_string()));
    }
    fields
}

/// A bounded queue: publishing never waits for Redis, and an outage longer than the queue
/// drops the oldest events, counted, so a reset marker can follow them.
pub(super) struct Outbox {
    cap: usize,
    inner: Mutex<Queue>,
    pub(super) dropped: AtomicU64,
}

struct Queue {
    events: VecDeque<Outgoing>,
    next_ticket: u64,
    /// Events dropped since the last reset marker was sent.
    lost: u64,
}

impl Outbox {
    pub(super) fn new(cap: usize) -> Self {
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

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every critical section leaves the queue consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Queues `fields`; when full, drops the oldest event first.
    pub(super) fn push(&self, fields: Fields) {
        let mut queue = self.lock();
        if queue.events.len() >= self.cap {
            queue.events.pop_front();
            queue.lost += 1;
            self.dropped.fetch_add(1, Ordering::Relaxed);
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
            fields,
        });
        crate::observe::engine_outbox(queue.events.len());
    }

    /// A copy of the next `max` events to send (they stay queued until acknowledged), and how
    /// many were lost since the last reset marker.
    pub(super) fn peek(&self, max: usize) -> (Vec<Outgoing>, u64) {
        let queue = self.lock();
        (queue.events.iter().take(max).cloned().collect(), queue.lost)
    }

    /// Removes the events up to `ticket` (some may have been dropped meanwhile) and counts
    /// `lost` as reported.
    pub(super) fn ack(&self, ticket: Option<u64>, lost: u64) {
        let mut queue = self.lock();
        queue.lost -= lost.min(queue.lost);
        if let Some(ticket) = ticket {
            while queue.events.front().is_some_and(|o| o.ticket <= ticket) {
                queue.events.pop_front();
            }
        }
    }

    /// Empties the queue, counting what it held as dropped; returns how many.
    pub(super) fn abandon(&self) -> usize {
        let left = std::mem::take(&mut self.lock().events).len();
        self.dropped.fetch_add(left as u64, Ordering::Relaxed);
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
            outbox.push(vec![("d", i.to_string())]);
        }
        let (batch, lost) = outbox.peek(10);
        assert_eq!(lost, 1);
        assert_eq!(batch.iter().map(|o| o.ticket).collect::<Vec<_>>(), [2, 3]);
        outbox.ack(Some(2), lost);
        let (batch, lost) = outbox.peek(10);
        assert_eq!((batch.len(), lost), (1, 0));
        assert_eq!(outbox.abandon(), 1);
        assert_eq!(outbox.dropped.load(Ordering::Relaxed), 2);
    }
}
