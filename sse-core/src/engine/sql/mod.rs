//! The event log in the application's own database (features `sqlite`, `postgres`): a table
//! the events are written to in the transaction that carries their change, so an event exists
//! if and only if its change committed, and a history that outlives the process.
//!
//! Every instance on the database follows the table: PostgreSQL wakes it with
//! `LISTEN`/`NOTIFY`, a commit in the same process wakes it directly, and a poll is the safety
//! net (and how a second process on one SQLite file learns of new rows). Replays on any
//! instance read the table.

mod backend;
mod follower;
mod publisher;
mod relay;
mod schema;
#[cfg(all(test, feature = "sqlite"))]
mod tests;
mod tx;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::watch;

pub(crate) use backend::Pool;
use backend::{Content, Row};
pub use schema::{POSTGRES_SCHEMA, SQLITE_SCHEMA};
pub use tx::TxHandle;
pub use tx::{Connection, Tx, TxConn};

use super::link::EngineLink;
use super::pages::{PageKey, PageSource};
use super::{
    Append, Body, Engine, EngineOptions, EngineStats, Entry, ReplayFrom, ReplayFuture, ReplayPage,
    ResetReason, Senders, Sink, StopFuture,
};
use crate::error::EventLogError;
use crate::wire::{new_epoch, EventId};

/// How often a follower reads the table when nothing woke it.
const POLL: Duration = Duration::from_millis(250);
/// How often an instance applies the retention limits.
const TRIM_EVERY: Duration = Duration::from_secs(5);
/// Rows read at a time by a follower.
const BATCH: usize = 512;

/// The event log in a table of the application's database, for
/// [`BroadcasterBuilder::event_log`](crate::BroadcasterBuilder::event_log). Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use sse_core::{sql::EventLog, Broadcaster};
///
/// let pool = sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?;
/// EventLog::ensure_schema(&pool).await?; // or add `SQLITE_SCHEMA` to your migrations
/// let log = EventLog::open(&pool).await?;
/// let events = Broadcaster::builder().event_log(&log).build();
/// # let _ = events; Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventLog {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    epoch: u64,
    /// The newest position when the log was opened: where a broadcaster's delivery starts.
    newest: u64,
    retain_for: Option<Duration>,
    poll: Duration,
    /// Counts commits in this process that wrote events: the followers read at once.
    commits: watch::Sender<u64>,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("database", &self.shared.pool.backend())
            .field("epoch", &self.shared.epoch)
            .finish_non_exhaustive()
    }
}

/// A pool [`EventLog`] can use: `sqlx::SqlitePool` (feature `sqlite`) or `sqlx::PgPool`
/// (feature `postgres`).
pub trait Database: sealed::Sealed {}

mod sealed {
    pub trait Sealed {
        fn pool(&self) -> super::Pool;
    }
}

#[cfg(feature = "sqlite")]
impl Database for sqlx::SqlitePool {}
#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::SqlitePool {
    fn pool(&self) -> Pool {
        Pool::Sqlite(self.clone())
    }
}

#[cfg(feature = "postgres")]
impl Database for sqlx::PgPool {}
#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::PgPool {
    fn pool(&self) -> Pool {
        Pool::Postgres(self.clone())
    }
}

fn database(err: sqlx::Error) -> EventLogError {
    EventLogError::Database(Box::new(err))
}

impl EventLog {
    /// Creates the log's tables if they do not exist ([`SQLITE_SCHEMA`],
    /// [`POSTGRES_SCHEMA`]). Safe when several instances start together.
    pub async fn ensure_schema(pool: &impl Database) -> Result<(), EventLogError> {
        pool.pool().ensure_schema().await.map_err(database)
    }

    /// The log on `pool`'s database, whose tables exist; the first instance to open it
    /// gives it its epoch, which then lasts as long as the table.
    pub async fn open(pool: &impl Database) -> Result<Self, EventLogError> {
        let pool = pool.pool();
        let epoch = pool
            .epoch(new_epoch())
            .await
            .map_err(database)?
            .ok_or(EventLogError::NoSchema)?;
        let newest = pool.newest().await.map_err(database)?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                epoch,
                newest,
                retain_for: None,
                poll: POLL,
                commits: watch::channel(0).0,
            }),
        })
    }

    /// Also removes events older than `age` (besides the broadcaster's
    /// [`history`](crate::BroadcasterBuilder::history) and
    /// [`history_bytes`](crate::BroadcasterBuilder::history_bytes) limits). A client that
    /// resumes from a removed event gets an `sse-reset`.
    #[must_use]
    pub fn retain_for(self, age: Duration) -> Self {
        self.with(|shared| shared.retain_for = Some(age))
    }

    /// How often followers read the table when nothing woke them (default 250 ms): on
    /// PostgreSQL a safety net under `LISTEN`/`NOTIFY`; on SQLite, how soon another process's
    /// events are seen.
    #[must_use]
    pub fn poll_every(self, every: Duration) -> Self {
        self.with(|shared| shared.poll = every.max(Duration::from_millis(1)))
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Shared {
            pool: self.shared.pool.clone(),
            epoch: self.shared.epoch,
            newest: self.shared.newest,
            retain_for: self.shared.retain_for,
            poll: self.shared.poll,
            commits: watch::channel(0).0,
        };
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Begins a transaction whose events are written with it: see [`Tx`].
    pub async fn begin(&self) -> Result<Tx, crate::error::TxError> {
        Tx::begin(self).await
    }

    /// The epoch of the log's ids.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// Tells this process's followers that a commit wrote events.
    pub(crate) fn committed(&self) {
        self.shared.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// The engine of one broadcaster: the log alone, or relayed into `transport` (a server
    /// engine opened with [`EventLog::relay_sender`]).
    pub(crate) fn open_engine(
        &self,
        options: EngineOptions,
        transport: Option<Arc<dyn Engine>>,
    ) -> Arc<dyn Engine> {
        Arc::new(SqlLog {
            log: self.clone(),
            pool: OnceLock::new(),
            options,
            newest: AtomicU64::new(0),
            relay_lag: AtomicU64::new(0),
            transport,
            ctl: EngineLink::new("sql", options.outbox),
        })
    }

    /// The sender every instance relays as: the same for all instances on this log, and
    /// never one an instance draws for itself (those have 40 bits).
    pub(crate) fn relay_sender(&self) -> u64 {
        self.shared.epoch | (1 << 40)
    }
}

/// One broadcaster's side of the log.
pub(crate) struct SqlLog {
    log: EventLog,
    /// The log's own connections, made on its thread when its tasks first need them (a pool
    /// starts its upkeep on the runtime it is made on, and the broadcaster may be built
    /// outside any).
    pool: OnceLock<Pool>,
    options: EngineOptions,
    /// The newest position the follower has read.
    newest: AtomicU64,
    /// On the instance that relays: committed events the engine has not acknowledged.
    relay_lag: AtomicU64,
    /// The server engine the log is relayed into, which then delivers and replays.
    transport: Option<Arc<dyn Engine>>,
    ctl: EngineLink<Append>,
}

impl SqlLog {
    /// The log's own pool; called only by its tasks, on its thread.
    fn pool(&self) -> &Pool {
        self.pool.get_or_init(|| self.log.shared.pool.sibling())
    }

    fn id(&self, seq: u64) -> EventId {
        EventId::new(self.log.shared.epoch, seq)
    }

    /// A row as an engine hands it over; a malformed one is logged, counted, and becomes a
    /// reset for everyone (who it was for cannot be read).
    fn entry(&self, row: Row) -> Entry {
        let body = match row.content {
            Content::Event(event) => Body::Event(event),
            Content::Marker(reason) => Body::Reset(ResetReason::from_marker(&reason)),
            Content::Malformed(why) => {
                self.ctl.counters.failed();
                tracing::error!(
                    seq = row.seq,
                    why,
                    "sse event log: a row is not an event; subscribers get a reset instead"
                );
                Body::Reset(ResetReason::Lost { events: 1 })
            }
        };
        Entry {
            id: self.id(row.seq),
            body,
        }
    }

    fn failed(&self, task: &str, err: &dyn fmt::Display) {
        self.ctl.counters.failed();
        tracing::warn!(
            task,
            database = self.log.shared.pool.backend(),
            %err,
            "sse event log: the database failed; retrying"
        );
    }
}

impl Engine for SqlLog {
    fn follow(self: Arc<Self>, sink: Weak<dyn Sink>) {
        if let Some(transport) = self.transport.clone() {
            transport.clone().follow(sink.clone());
            EngineLink::spawn(
                self,
                |log| &log.ctl,
                |log, _| async move {
                    tokio::join!(
                        publisher::run(log.clone(), sink.clone()),
                        relay::run(log.clone(), transport, sink.clone()),
                    );
                },
            );
            return;
        }
        EngineLink::spawn(
            self,
            |log| &log.ctl,
            |log, requests| async move {
                let replays = async {
                    if let Some(requests) = requests {
                        log.ctl.serve_replays(&*log, &sink, requests).await;
                    }
                };
                tokio::join!(
                    publisher::run(log.clone(), sink.clone()),
                    follower::run(log.clone(), sink.clone()),
                    replays,
                );
            },
        );
    }

    fn known_start(&self) -> Option<EventId> {
        match &self.transport {
            Some(_) => None,
            None => Some(self.id(self.log.shared.newest)),
        }
    }

    fn append(&self, event: Append) {
        self.ctl.append(event);
    }

    fn replay(
        &self,
        from: ReplayFrom,
        upto: EventId,
        max: usize,
        seen: Option<Senders>,
    ) -> ReplayFuture {
        match &self.transport {
            Some(transport) => transport.replay(from, upto, max, seen),
            None => self.ctl.replay(from, upto, max, seen),
        }
    }

    #[cfg(feature = "mercure")]
    fn find_wire_id<'a>(&'a self, wire_id: &'a str) -> Option<super::FindFuture<'a>> {
        // Relayed, the instance's ids are the transport's, not the table's positions.
        if self.transport.is_some() {
            return None;
        }
        // The application's pool, as its handlers use it: the log's own belongs to its
        // thread.
        Some(Box::pin(async move {
            match self.log.shared.pool.find_wire_id(wire_id).await {
                Ok(seq) => seq.map(|seq| self.id(seq)),
                Err(err) => {
                    self.ctl.counters.failed();
                    tracing::warn!(
                        database = self.log.shared.pool.backend(),
                        %err,
                        "sse event log: looking up a publisher's id failed; the client gets a reset"
                    );
                    None
                }
            }
        }))
    }

    fn may_be_ahead(&self, id: EventId, last_read: EventId) -> bool {
        if let Some(transport) = &self.transport {
            return transport.may_be_ahead(id, last_read);
        }
        // Positions are given one by one: one far past the newest read is not one this log
        // gave out.
        let newest = self.newest.load(Ordering::Relaxed).max(last_read.seq());
        id.epoch() == self.log.shared.epoch && id.seq() <= newest.saturating_add(1 << 20)
    }

    fn stop(&self, flush: Duration) {
        self.ctl.stop(flush);
        if let Some(transport) = &self.transport {
            transport.stop(flush);
        }
    }

    fn stopped(&self) -> StopFuture {
        let own = self.ctl.stopped();
        let transport = self.transport.as_ref().map(|t| t.stopped());
        Box::pin(async move {
            own.await;
            if let Some(transport) = transport {
                transport.await;
            }
        })
    }

    fn stats(&self) -> EngineStats {
        let own = self.ctl.stats();
        let Some(transport) = &self.transport else {
            return own;
        };
        let carried = transport.stats();
        EngineStats {
            outbox: own.outbox + carried.outbox,
            outbox_dropped: own.outbox_dropped + carried.outbox_dropped,
            reconnects: own.reconnects + carried.reconnects,
            errors: own.errors + carried.errors,
            relay_lag: self.relay_lag.load(Ordering::Relaxed),
            ..carried
        }
    }
}

impl PageSource for SqlLog {
    type Conn = ();
    type Error = sqlx::Error;
    const TIMEOUT: Duration = Duration::from_secs(5);
    const CONNECT_FOR_FIRST_PAGE: bool = false;

    async fn connect(&self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn fetch(
        &self,
        _conn: &mut (),
        key: PageKey,
        seen: Option<Senders>,
    ) -> Result<Result<ReplayPage, ResetReason>, sqlx::Error> {
        let from = match key.from {
            ReplayFrom::After(after) => after,
            ReplayFrom::Oldest => key.upto,
        };
        if from.epoch() != self.log.shared.epoch || from.entry_parts().is_some() {
            return Ok(Err(ResetReason::Stale));
        }
        let after = match key.from {
            ReplayFrom::After(after) => after.seq(),
            // Whatever the table holds: one read sees the rows of one moment, and trimming
            // deletes the oldest first, so what it returns has no hole.
            ReplayFrom::Oldest => 0,
        };
        let rows = self.pool().rows(after, key.upto.seq(), key.max).await?;
        // Read after the rows: trimming records its mark before it deletes, so a mark not
        // past `after` now means nothing after `after` was gone when the rows were read.
        if matches!(key.from, ReplayFrom::After(_)) && self.pool().trimmed().await? > after {
            return Ok(Err(ResetReason::TooOld));
        }
        let reached = rows.last().map(|row| self.id(row.seq));
        let entries = rows.into_iter().map(|row| self.entry(row)).collect();
        Ok(Ok(ReplayPage {
            entries,
            reached,
            seen: seen.unwrap_or_default(),
        }))
    }

    fn failed(&self, err: &dyn fmt::Display) {
        SqlLog::failed(self, "replay", err);
    }
}
