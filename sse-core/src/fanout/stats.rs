//! The counters behind [`Broadcaster::stats`](crate::Broadcaster::stats).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::engine::EngineStats;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) subscribers: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) resumed: crate::observe::Reported<{ crate::observe::RESUMED }>,
    pub(crate) caught_up: crate::observe::Reported<{ crate::observe::CAUGHT_UP }>,
    pub(crate) resets: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) emit_failures: AtomicU64,
    pub(crate) topic_failures: AtomicU64,
    pub(crate) bad_requests: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) forbidden: AtomicU64,
    pub(crate) over_limit: AtomicU64,
    pub(crate) expired: AtomicU64,
    /// When refusals were last summed up in the log (ms since the Unix epoch), and their total
    /// then.
    pub(crate) refusals_summarized_at: AtomicU64,
    pub(crate) refusals_summarized: AtomicU64,
    /// Streams whose `Last-Event-ID` could not be resumed (a client's doing), and when and at
    /// what total they were last summed up in the log.
    pub(crate) resume_resets: AtomicU64,
    pub(crate) resume_resets_summarized_at: AtomicU64,
    pub(crate) resume_resets_summarized: AtomicU64,
}

/// At most one summary a minute.
const SUMMARY_EVERY_MS: u64 = 60_000;

impl Counters {
    /// Counts a stream whose `Last-Event-ID` could not be resumed; at most once a minute,
    /// how many there were since the last time (each is a debug line: a client can send any
    /// id at any rate).
    pub(crate) fn resume_reset(&self) -> Option<u64> {
        let total = self.resume_resets.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = self.resume_resets_summarized_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SUMMARY_EVERY_MS
            // Another stream is writing this summary.
            || self
                .resume_resets_summarized_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        let before = self.resume_resets_summarized.swap(total, Ordering::Relaxed);
        Some(total.saturating_sub(before))
    }
}

/// A snapshot of a broadcaster's counters, from [`Broadcaster::stats`](crate::Broadcaster::stats).
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
    /// Of `subscribers`, the streams that chose topics: each is woken only for the events it
    /// wants, through the subscription index.
    pub topic_subscribers: usize,
    /// Distinct exact topics (such as `users/42`) that some stream follows.
    pub followed_topics: usize,
    /// The engine's outbox and connection (such as Redis's); all zero without one.
    pub engine: EngineStats,
}

impl Counters {
    /// The counters now, with the event log's.
    pub(crate) fn snapshot(&self, engine: EngineStats) -> Stats {
        Stats {
            subscribers: self.subscribers.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
            caught_up: self.caught_up.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            disconnects: self.disconnects.load(Ordering::Relaxed),
            emit_failures: self.emit_failures.load(Ordering::Relaxed),
            topic_failures: self.topic_failures.load(Ordering::Relaxed),
            bad_requests: self.bad_requests.load(Ordering::Relaxed),
            unauthorized: self.unauthorized.load(Ordering::Relaxed),
            forbidden: self.forbidden.load(Ordering::Relaxed),
            over_limit: self.over_limit.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            topic_subscribers: 0,
            followed_topics: 0,
            engine,
        }
    }
}
