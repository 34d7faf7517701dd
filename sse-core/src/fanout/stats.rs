//! The one owner of a broadcaster's counting: behind [`Broadcaster::stats`](crate::Broadcaster::stats),
//! and the one caller of the metric, span-note and inspector hooks of [`observe`](crate::observe)
//! for what the fan-out, `http` and `emit` see happen. Every other place calls the method
//! named after what happened; none touches an atomic or a metric. Every counter is a relaxed
//! atomic: each is a total read on its own, and nothing is ordered by it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::engine::EngineStats;
use crate::observe;
use crate::topic::Route;
use crate::wire::{EventId, ResetReason};

#[derive(Default)]
pub(crate) struct Counters {
    subscribers: AtomicUsize,
    published: AtomicU64,
    resumed: AtomicU64,
    caught_up: AtomicU64,
    resets: AtomicU64,
    disconnects: AtomicU64,
    emit_failures: AtomicU64,
    topic_failures: AtomicU64,
    bad_requests: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    over_limit: AtomicU64,
    expired: AtomicU64,
    /// When refusals were last summed up in the log, and their total then.
    refusals_summary: Summary,
    /// Streams whose `Last-Event-ID` could not be resumed (a client's doing), and when and at
    /// what total they were last summed up in the log.
    resume_resets: AtomicU64,
    resume_resets_summary: Summary,
}

/// Which counter a refused stream request goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refused {
    BadRequest,
    Unauthorized,
    Forbidden,
    OverLimit,
}

/// Why an `#[emit_event]` event was not published to a broadcaster.
#[derive(Clone, Copy, Debug)]
pub(crate) enum EmitFailure {
    /// Its payload could not be serialized.
    Serialize,
    /// Its topic template could not be filled from the payload.
    Topic,
    /// The broadcaster refused it (shut down).
    Publish,
    /// The transaction that carried it failed to commit (neither the change nor the event
    /// exists).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    Commit,
}

impl EmitFailure {
    /// The `reason` label of `sse_emit_failures_total`.
    fn label(self) -> &'static str {
        match self {
            Self::Serialize => "serialize",
            Self::Topic => "topic",
            Self::Publish => "publish",
            Self::Commit => "commit",
        }
    }
}

/// The refusals since the last summary, and the totals by kind, for the log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refusals {
    pub(crate) since: u64,
    pub(crate) bad_requests: u64,
    pub(crate) unauthorized: u64,
    pub(crate) forbidden: u64,
    pub(crate) over_limit: u64,
}

/// At most one summary a minute.
const SUMMARY_EVERY_MS: u64 = 60_000;

/// When a total was last summed up in the log (ms since the Unix epoch), and the total then.
#[derive(Default)]
struct Summary {
    at: AtomicU64,
    total: AtomicU64,
}

impl Summary {
    /// How much `total` grew since the last summary, when one is due (at most one a minute,
    /// whoever asks first).
    fn due(&self, total: u64) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = self.at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SUMMARY_EVERY_MS
            // Another thread is writing this summary.
            || self
                .at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        let before = self.total.swap(total, Ordering::Relaxed);
        Some(total.saturating_sub(before))
    }
}

impl Counters {
    /// An event was published (`id`: `None` when an event log engine assigns it later): per
    /// event, never per subscriber.
    #[inline]
    pub(crate) fn published(&self, event: &str, route: &Route, id: Option<EventId>, bytes: usize) {
        self.published.fetch_add(1, Ordering::Relaxed);
        observe::published(event, route, id, bytes);
    }

    /// An event published through an event log engine arrived back from it, with its id.
    #[inline]
    pub(crate) fn arrived(&self, id: EventId) {
        observe::arrived(id);
    }

    /// A stream was registered.
    pub(crate) fn subscribed(&self) {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream ended: its client went away, or the server shut down or ended it.
    pub(crate) fn disconnected(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Streams open now.
    pub(crate) fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// A stream resumed from its `Last-Event-ID` (from the history or the event log).
    pub(crate) fn resumed(&self) {
        self.resumed.fetch_add(1, Ordering::Relaxed);
        observe::resumed();
    }

    /// A subscriber that fell behind was caught up from the history.
    pub(crate) fn caught_up(&self) {
        self.caught_up.fetch_add(1, Ordering::Relaxed);
        observe::caught_up();
    }

    /// A reset event for `reason` this instance decided on: for one subscriber, or (a live
    /// reset) for all. Counted before it is sent: whoever sees the reset sees the count.
    pub(crate) fn reset(&self, reason: ResetReason) {
        self.resets.fetch_add(1, Ordering::Relaxed);
        observe::reset(reason);
    }

    /// A reset the event log's stream carries, encoded here for the live subscribers or a
    /// replay: in the metrics only ([`Stats::resets`] counts the resets this instance decides
    /// on).
    pub(crate) fn relayed_reset(&self, reason: ResetReason) {
        observe::reset(reason);
    }

    /// A stream's `Last-Event-ID` could not be resumed and it got a reset (see
    /// [`Counters::reset`]); at most once a minute, how many there were since the last time
    /// (each is a debug line: a client can send any id at any rate).
    pub(crate) fn resume_reset(&self, reason: ResetReason) -> Option<u64> {
        self.reset(reason);
        let total = self.resume_resets.fetch_add(1, Ordering::Relaxed) + 1;
        self.resume_resets_summary.due(total)
    }

    /// A stream ended because its credentials expired.
    pub(crate) fn expired(&self) {
        self.expired.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream request was refused with `status`, counted as `kind`; at most once a minute,
    /// the refusals since the last time and the totals.
    pub(crate) fn refused(&self, kind: Refused, status: u16) -> Option<Refusals> {
        let counter = match kind {
            Refused::BadRequest => &self.bad_requests,
            Refused::Unauthorized => &self.unauthorized,
            Refused::Forbidden => &self.forbidden,
            Refused::OverLimit => &self.over_limit,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        observe::refused(status);
        let (bad_requests, unauthorized, forbidden, over_limit) = (
            self.bad_requests.load(Ordering::Relaxed),
            self.unauthorized.load(Ordering::Relaxed),
            self.forbidden.load(Ordering::Relaxed),
            self.over_limit.load(Ordering::Relaxed),
        );
        let since = self
            .refusals_summary
            .due(bad_requests + unauthorized + forbidden + over_limit)?;
        Some(Refusals {
            since,
            bad_requests,
            unauthorized,
            forbidden,
            over_limit,
        })
    }

    /// An `#[emit_event]` event was not published to this broadcaster.
    pub(crate) fn emit_failed(&self, why: EmitFailure) {
        self.emit_failures.fetch_add(1, Ordering::Relaxed);
        if matches!(why, EmitFailure::Topic) {
            self.topic_failures.fetch_add(1, Ordering::Relaxed);
        }
        observe::emit_failed(why.label());
    }

    /// An `#[emit_event]` event was not published because no broadcaster is registered: no
    /// broadcaster's stats to count it in, only the metrics.
    pub(crate) fn emit_unregistered() {
        observe::emit_failed("no_broadcaster");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_failure_is_an_emit_failure_too() {
        let c = Counters::default();
        c.emit_failed(EmitFailure::Topic);
        c.emit_failed(EmitFailure::Serialize);
        c.emit_failed(EmitFailure::Publish);
        let stats = c.snapshot(EngineStats::default());
        assert_eq!((stats.emit_failures, stats.topic_failures), (3, 1));
    }

    #[test]
    fn refusals_are_counted_by_kind_and_summed_up_once_a_minute() {
        let c = Counters::default();
        let first = c.refused(Refused::Forbidden, 403).map(|r| r.since);
        assert_eq!(first, Some(1), "the first refusal is summed up at once");
        assert!(c.refused(Refused::BadRequest, 400).is_none());
        assert!(c.refused(Refused::OverLimit, 503).is_none());
        let stats = c.snapshot(EngineStats::default());
        assert_eq!(
            (
                stats.forbidden,
                stats.bad_requests,
                stats.over_limit,
                stats.unauthorized
            ),
            (1, 1, 1, 0)
        );
    }

    #[test]
    fn a_stream_counts_while_open_and_once_when_it_ends() {
        let c = Counters::default();
        c.subscribed();
        c.subscribed();
        c.disconnected();
        assert_eq!(c.subscribers(), 1);
        let stats = c.snapshot(EngineStats::default());
        assert_eq!((stats.subscribers, stats.disconnects), (1, 1));
    }

    #[test]
    fn resets_relayed_from_the_engine_are_not_this_instances_resets() {
        let c = Counters::default();
        c.reset(ResetReason::FellBehind);
        c.relayed_reset(ResetReason::Trimmed);
        assert_eq!(c.resume_reset(ResetReason::MalformedId), Some(1));
        assert_eq!(c.snapshot(EngineStats::default()).resets, 2);
    }
}
