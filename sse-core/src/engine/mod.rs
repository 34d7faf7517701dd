//! Engines: an event store outside the process that several server instances share, so an
//! event published on any of them reaches the subscribers of all, with the same ids, and a
//! client resumes with its `Last-Event-ID` on any of them.
//!
//! | engine | feature | builder |
//! |---|---|---|
//! | Redis Streams | `redis` (`redis-tls` for `rediss://`) | `BroadcasterBuilder::redis` |
//! | NATS JetStream | `nats` | `BroadcasterBuilder::nats` |
//! | a table in the application's SQLite or PostgreSQL database | `sqlite`, `postgres` | `BroadcasterBuilder::event_log` |
//! | in memory, with fault injection, for tests | `testing` | `BroadcasterBuilder::memory_log` |
//!
//! Publishing never waits for an engine: events queue in a bounded outbox during an outage,
//! and subscribers get an `sse-reset` if some are dropped. [`EngineStats`] (in
//! [`Stats::engine`](crate::Stats::engine)) shows how the link fares; [`redact_url`] is how
//! engine URLs appear in logs and errors.

// Inside: without an engine, the fan-out numbers events itself and keeps them in its local
// history. With one, `publish` hands the event to `Engine::append` and returns; the engine's
// follower delivers every entry, from whichever instance, to the fan-out's `Sink` in the
// engine's order, where it is encoded once and placed in the local history. A `Last-Event-ID`
// older than that history is answered from `Engine::replay`. This is the only module where an
// engine's `cfg(feature)` appears.

// Without an engine compiled in, only the tests' fake implements the seam.
#![cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "sqlite",
        feature = "postgres"
    )),
    allow(dead_code)
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::topic::Route;
use crate::wire::EventId;

mod backoff;
mod dedupe;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "sqlite",
    feature = "postgres"
))]
mod link;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod memory;
#[cfg(feature = "nats")]
pub(crate) mod nats;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "sqlite",
    feature = "postgres"
))]
mod outbox;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "sqlite",
    feature = "postgres"
))]
mod pages;
mod redact;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;

#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "sqlite",
        feature = "postgres"
    )),
    allow(unused_imports)
)]
pub(crate) use backoff::Backoff;
pub(crate) use dedupe::Senders;
pub use redact::redact_url;

/// One entry an engine read, decoded and numbered, not encoded: engines never write the
/// wire format, the fan-out encodes each entry once (`fanout::Frame::encode`).
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) id: EventId,
    pub(crate) body: Body,
}

/// What an engine's entry holds.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// An event, as it was appended.
    Event(Append),
    /// A marker an instance appended when its outbox overflowed: every subscriber resets.
    Reset(ResetReason),
}

impl Entry {
    /// An entry for everyone (a reset) or for its event's route.
    pub(crate) fn route(&self) -> Option<&Route> {
        match &self.body {
            Body::Event(event) => Some(&event.route),
            Body::Reset(_) => None,
        }
    }
}

/// An event on its way into a log: already serialized, not yet numbered or encoded.
#[derive(Clone, Debug)]
pub(crate) struct Append {
    pub(crate) name: String,
    pub(crate) data: String,
    /// `data` is a JSON document (else plain text).
    pub(crate) json: bool,
    pub(crate) route: Arc<Route>,
    /// The id on the wire its publisher chose (a Mercure update's), if any.
    pub(crate) wire_id: Option<String>,
    /// The `retry:` field its publisher asked for, in milliseconds.
    pub(crate) retry: Option<u64>,
}

/// What a log needs to know of the broadcaster that owns it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EngineOptions {
    /// About how many entries the log keeps (it trims older ones).
    pub(crate) history: usize,
    /// About how many bytes of events the log keeps, where the engine can bound them (NATS;
    /// a Redis stream is trimmed by count only).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) history_bytes: usize,
    /// Most events waiting for the log during an outage before the oldest are dropped.
    pub(crate) outbox: usize,
    /// Set when the engine relays the SQL event log: every instance sends as this one
    /// sender, with the log's positions as tickets, so a row relayed twice (by two instances,
    /// or again after a crash) is stored or delivered once.
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
    pub(crate) relay_sender: Option<u64>,
}

/// A row of the SQL event log on its way to a server engine.
#[cfg_attr(
    not(all(
        any(feature = "sqlite", feature = "postgres"),
        any(feature = "redis", feature = "nats")
    )),
    allow(dead_code)
)]
#[derive(Clone, Debug)]
pub(crate) enum Relayed {
    Event(Append),
    /// A reset marker, with its reason as the log holds it.
    Marker(String),
}

/// How many entries before a replay's start are read to recognise repeats of them: a batch
/// is sent again right after the one whose reply was lost.
#[cfg(any(feature = "redis", feature = "testing", test))]
pub(crate) const DEDUPE_WINDOW: usize = 256;

/// Resolves when an event log has stopped.
pub(crate) type StopFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Why a replay could not be served; sent to the client in its reset event.
pub(crate) type ReplayError = ResetReason;

/// The answer of [`Engine::find_wire_id`].
#[cfg(feature = "mercure")]
pub(crate) type FindFuture<'a> = Pin<Box<dyn Future<Output = Option<EventId>> + 'a>>;

/// Where a replay starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplayFrom {
    /// After this entry, which must still be in the store: what followed it may have been
    /// trimmed otherwise.
    After(EventId),
    /// At the oldest entry the store still holds (Mercure's `earliest`): nothing before it
    /// was promised, so nothing is checked.
    Oldest,
}

/// One page of missed events fetched from a log, or why they cannot be.
pub(crate) type ReplayFuture =
    Pin<Box<dyn Future<Output = Result<ReplayPage, ReplayError>> + Send + 'static>>;

/// One page of a replay.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplayPage {
    /// The entries, repeats removed.
    pub(crate) entries: Vec<Entry>,
    /// The last entry read (repeats included); `None` when there was nothing after `after`.
    /// The next page starts after it.
    pub(crate) reached: Option<EventId>,
    /// The senders seen so far, for the next page to tell repeats apart.
    pub(crate) seen: Senders,
}

pub(crate) use crate::wire::ResetReason;

/// Where a log delivers what it reads: the fan-out of one broadcaster.
pub(crate) trait Sink: Send + Sync {
    /// The log (re)starts at `at`, the last entry of the stream of epoch `at.epoch()`. A new
    /// epoch empties the local history (its ids mean nothing in the new stream) and, after the
    /// first, resets every subscriber.
    fn start_epoch(&self, at: EventId);
    /// The next entry of the log, in the log's order; entries at or before the last one
    /// delivered are ignored.
    fn deliver(&self, entry: Entry);
    /// Entries were lost between the last one delivered and the next (trimmed before they
    /// were read): every subscriber gets a reset, and the local history is emptied so that no
    /// client resumes across the gap.
    fn gap(&self, reason: ResetReason);
}

/// A store of events shared by several broadcasters (one per server instance).
///
/// Implementations never make `append` wait for the store: they queue (boundedly) and send
/// in the background, dropping the oldest queued event when an outage outlasts the queue, and
/// publishing a reset marker afterwards so every subscriber learns of the loss.
pub(crate) trait Engine: Send + Sync + 'static {
    /// Starts following the store: every entry, from any instance, is encoded once and
    /// given to `sink` in the store's order, until [`Engine::stop`] or the sink is dropped.
    fn follow(self: Arc<Self>, sink: Weak<dyn Sink>);

    /// Where the log starts, when it is known without asking the store (the SQL log read it
    /// when it was opened): the broadcaster's ids are the log's from the first stream on.
    fn known_start(&self) -> Option<EventId> {
        None
    }

    /// Queues a row of the SQL event log for the store as ticket `ticket` of the relay
    /// sender ([`EngineOptions::relay_sender`]); `false` if this engine cannot relay.
    #[cfg_attr(
        not(all(
            any(feature = "sqlite", feature = "postgres"),
            any(feature = "redis", feature = "nats")
        )),
        allow(dead_code)
    )]
    fn relay(&self, _row: Relayed, _ticket: u64) -> bool {
        false
    }

    /// Queues `event` for the store; never waits.
    fn append(&self, event: Append);

    /// One page of a `Last-Event-ID` replay: up to `max` encoded entries from `from`, up
    /// to and including `upto` (ids of this log), repeats removed. Every page after an entry
    /// fails with [`ResetReason::TooOld`] when that entry is no longer in the store (what
    /// followed it may have been trimmed, also between two pages), checked before anything
    /// is fetched; a page from [`ReplayFrom::Oldest`] starts at whatever the store holds
    /// first, in the epoch of `upto`. The first page (`seen: None`) learns the senders from
    /// the entries just before its start; each next page gets the previous page's
    /// [`ReplayPage::seen`]. The caller asks for the next page after
    /// [`ReplayPage::reached`], as its client reads: a client that missed much costs one
    /// page at a time.
    fn replay(
        &self,
        from: ReplayFrom,
        upto: EventId,
        max: usize,
        seen: Option<Senders>,
    ) -> ReplayFuture;

    /// The newest entry whose publisher chose `wire_id` as its id on the wire (Mercure), for
    /// a client resuming from one older than the local history; `None` when the store has
    /// no way to look it up (Redis and NATS streams have no index of such ids). The answer
    /// is `None` too when the store does not hold it, or failed (logged and counted).
    #[cfg(feature = "mercure")]
    fn find_wire_id<'a>(&'a self, _wire_id: &'a str) -> Option<FindFuture<'a>> {
        None
    }

    /// Whether `id`, newer than `last_read` (the last entry this instance has read), can be
    /// an entry another instance appended that this one has not read yet, rather than an id
    /// this store never gave out.
    fn may_be_ahead(&self, id: EventId, last_read: EventId) -> bool;

    /// Stops following; sends what is queued for up to `flush` more, then abandons the rest
    /// (logged and counted in [`EngineStats::outbox_dropped`]).
    fn stop(&self, flush: Duration);

    /// Resolves once that is done (at once if the log never started).
    fn stopped(&self) -> StopFuture;

    /// The link to the store.
    fn stats(&self) -> EngineStats;
}

/// With an event log engine (such as `BroadcasterBuilder::redis`, feature `redis`), how the
/// link to it fares; all zero without one. Part of [`Stats`](crate::Stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Events published here and not yet acknowledged by the store.
    pub outbox: usize,
    /// Events dropped from a full outbox during an outage (subscribers then get a reset), or
    /// still queued when the broadcaster stopped with the store unreachable.
    pub outbox_dropped: u64,
    /// Times the engine connected again after losing the store.
    pub reconnects: u64,
    /// Failed commands and connection attempts, timeouts, malformed entries.
    pub errors: u64,
    /// Times the stream's epoch changed: the store restarted empty or was flushed.
    pub epoch_changes: u64,
    /// Times entries were trimmed from the store before this instance read them (it was cut
    /// off, or fell behind the trimming); subscribers then get a reset.
    pub gaps: u64,
    /// With the SQL event log relayed to Redis or NATS, on the instance that relays:
    /// committed events not yet acknowledged by the store.
    pub relay_lag: u64,
    /// Microseconds from `publish` to the store acknowledging the event, for the last batch
    /// and the slowest so far (outages included).
    pub publish_latency_last_us: u64,
    /// See `publish_latency_last_us`.
    pub publish_latency_max_us: u64,
}
