//! The counters behind [`Broadcaster::stats`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::Broadcaster;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) subscribers: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) resumed: AtomicU64,
    pub(crate) caught_up: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) emit_failures: AtomicU64,
    pub(crate) topic_failures: AtomicU64,
    pub(crate) bad_requests: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) forbidden: AtomicU64,
    pub(crate) over_limit: AtomicU64,
    pub(crate) expired: AtomicU64,
}

/// With the Redis backend (`BroadcasterBuilder::redis`, feature `redis`), how the link to
/// Redis fares; all zero with the in-memory backend. Part of [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Events published here and not yet acknowledged by Redis.
    pub outbox: usize,
    /// Events dropped from a full outbox during an outage (subscribers then get a reset), or
    /// still queued when the broadcaster stopped with Redis unreachable.
    pub outbox_dropped: u64,
    /// Times the publisher connected again after losing Redis.
    pub reconnects: u64,
    /// Failed Redis commands and connection attempts, timeouts, malformed stream entries.
    pub errors: u64,
    /// Times the stream's epoch changed: Redis restarted empty or was flushed.
    pub epoch_changes: u64,
    /// Microseconds from `publish` to Redis acknowledging the event, for the last batch and
    /// the slowest so far (outages included).
    pub publish_latency_last_us: u64,
    /// See `publish_latency_last_us`.
    pub publish_latency_max_us: u64,
}

/// A snapshot of a broadcaster's counters, from [`Broadcaster::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Streams open now.
    pub subscribers: usize,
    /// Events published since the broadcaster was built.
    pub published: u64,
    /// Streams that resumed from a `Last-Event-ID` found in the history.
    pub resumed: u64,
    /// Times a subscriber fell behind and was caught up from the history.
    pub caught_up: u64,
    /// Reset events sent: unknown, malformed or too old `Last-Event-ID`, or a subscriber that
    /// fell behind further than the history reaches.
    pub resets: u64,
    /// Streams that ended because the client went away or the server shut down.
    pub disconnects: u64,
    /// Events that `#[emit_event]` could not publish (payload not serializable, no broadcaster
    /// registered, broadcaster shut down, topic template not fillable). The handler's
    /// response was sent regardless.
    pub emit_failures: u64,
    /// Of `emit_failures`: events whose topic template names a field the payload lacks, or
    /// whose value cannot be part of a topic.
    pub topic_failures: u64,
    /// Stream requests refused with 400 or 414: malformed or too many topic selectors, a bad
    /// client id, an over-long or unreadable query string.
    pub bad_requests: u64,
    /// Stream requests refused with 401: invalid or expired credentials, or none where a
    /// private topic was asked for.
    pub unauthorized: u64,
    /// Stream requests refused with 403: a private topic the credentials do not cover.
    pub forbidden: u64,
    /// Stream requests refused with 503 because of the subscriber limits.
    pub over_limit: u64,
    /// Streams ended because their credentials expired.
    pub expired: u64,
    /// The Redis backend's outbox and connection.
    pub store: StoreStats,
}

impl Broadcaster {
    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            subscribers: c.subscribers.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            caught_up: c.caught_up.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
            emit_failures: c.emit_failures.load(Ordering::Relaxed),
            topic_failures: c.topic_failures.load(Ordering::Relaxed),
            bad_requests: c.bad_requests.load(Ordering::Relaxed),
            unauthorized: c.unauthorized.load(Ordering::Relaxed),
            forbidden: c.forbidden.load(Ordering::Relaxed),
            over_limit: c.over_limit.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            store: self.store_stats(),
        }
    }

    #[cfg(not(feature = "redis"))]
    fn store_stats(&self) -> StoreStats {
        StoreStats::default()
    }

    #[cfg(feature = "redis")]
    fn store_stats(&self) -> StoreStats {
        let Some(redis) = &self.shared.redis else {
            return StoreStats::default();
        };
        let c = &redis.counters;
        StoreStats {
            outbox: redis.outbox_len(),
            outbox_dropped: c.outbox_dropped.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            epoch_changes: c.epoch_changes.load(Ordering::Relaxed),
            publish_latency_last_us: c.latency_last_us.load(Ordering::Relaxed),
            publish_latency_max_us: c.latency_max_us.load(Ordering::Relaxed),
        }
    }
}
