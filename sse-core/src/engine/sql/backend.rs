//! Every statement the SQL event log runs, written once and expanded for each database the
//! build supports ([`on_backend!`]): reading pages of rows, writing events in a transaction,
//! the log's epoch and trimming.
//!
//! Positions are given in commit order, so a reader that has read a position never sees a
//! smaller one appear later. SQLite has one writer at a time: a transaction that writes holds
//! the write lock from its first write to its commit, and the row id is given under it.
//! PostgreSQL runs writers together, so the first event of a transaction takes a
//! transaction-level advisory lock before it draws its position, held until the commit: the
//! events of two transactions are numbered in the order they commit, and the change itself
//! (written before) still runs concurrently.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "postgres")]
use sqlx::{PgPool, Postgres};
#[cfg(feature = "sqlite")]
use sqlx::{Sqlite, SqlitePool};

use crate::engine::Append;

/// The advisory lock key that orders the events of concurrent PostgreSQL transactions
/// (`b"sse-evts"` read as a number).
#[cfg(feature = "postgres")]
const ORDER_LOCK: i64 = 0x7373_652d_6576_7473;

/// The channel PostgreSQL notifies at each commit that wrote events.
#[cfg(feature = "postgres")]
pub(super) const CHANNEL: &str = "sse_events";

/// Runs `$body` with `$p` bound to the inner value of `$value`, an enum with one variant per
/// database: one copy of the code, compiled for each driver.
macro_rules! on_backend {
    ($value:expr, $ty:ident, |$p:ident| $body:expr) => {
        match $value {
            #[cfg(feature = "sqlite")]
            $ty::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            $ty::Postgres($p) => $body,
        }
    };
}

/// A pool on the application's database (public only to the sealed [`Database`](super::Database) trait; not nameable outside).
#[derive(Clone, Debug)]
pub enum Pool {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

/// An open transaction on the application's database.
pub(crate) enum Open {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// One row of `sse_events` as read.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) seq: u64,
    pub(crate) content: Content,
}

/// What a row holds.
#[derive(Debug)]
pub(crate) enum Content {
    Event(Append),
    /// A reset marker: events were lost before they reached the log (its reason).
    Marker(String),
    /// A row that cannot be read as an event (why).
    Malformed(String),
}

type Columns = (
    i64,
    String,
    String,
    i32,
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<i64>,
);

const COLUMNS: &str = "seq, name, data, json, topics, private, origin, wire_id, retry";

const INSERT: &str = "INSERT INTO sse_events \
                      (name, data, json, topics, private, origin, wire_id, retry, created_ms) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The first event of a PostgreSQL transaction: the ordering lock, the notification sent at
/// commit, and the row, in one round trip.
#[cfg(feature = "postgres")]
const INSERT_FIRST_PG: &str = "WITH l AS (SELECT pg_advisory_xact_lock($10)), \
                               n AS (SELECT pg_notify('sse_events', '')) \
                               INSERT INTO sse_events \
                               (name, data, json, topics, private, origin, wire_id, retry, created_ms) \
                               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM l, n";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The columns an event is stored in; a reset marker has an empty name and its reason as data.
struct Stored<'a> {
    name: &'a str,
    data: &'a str,
    json: i32,
    topics: String,
    private: i32,
    origin: Option<&'a str>,
    wire_id: Option<&'a str>,
    retry: Option<i64>,
}

impl<'a> Stored<'a> {
    fn of(event: &'a Append) -> Self {
        let topics: Vec<&str> = event.route.topics.iter().map(|t| &**t).collect();
        Self {
            name: &event.name,
            data: &event.data,
            json: i32::from(event.json),
            // A list of strings always serializes.
            topics: serde_json::to_string(&topics).unwrap_or_else(|_| "[]".to_owned()),
            private: i32::from(event.route.private),
            origin: event.route.origin.as_deref(),
            wire_id: event.wire_id.as_deref(),
            retry: event.retry.map(to_i64),
        }
    }

    fn reset(reason: &'a str) -> Self {
        Self {
            name: "",
            data: reason,
            json: 0,
            topics: "[]".to_owned(),
            private: 0,
            origin: None,
            wire_id: None,
            retry: None,
        }
    }
}

/// Binds a [`Stored`]'s columns to `$query` in `INSERT`'s order.
macro_rules! bind_stored {
    ($query:expr, $s:expr) => {
        $query
            .bind($s.name)
            .bind($s.data)
            .bind($s.json)
            .bind(&$s.topics)
            .bind($s.private)
            .bind($s.origin)
            .bind($s.wire_id)
            .bind($s.retry)
            .bind(now_ms())
    };
}

impl Open {
    pub(crate) async fn begin(pool: &Pool) -> Result<Self, sqlx::Error> {
        Ok(match pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => Open::Sqlite(p.begin().await?),
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => Open::Postgres(p.begin().await?),
        })
    }

    /// Writes `events` (and first a reset marker for `lost` dropped events, if any) in this
    /// transaction; they become visible, numbered in commit order, when it commits.
    pub(crate) async fn insert(
        &mut self,
        events: &[&Append],
        lost: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let rows = lost
            .map(Stored::reset)
            .into_iter()
            .chain(events.iter().map(|e| Stored::of(e)));
        match self {
            #[cfg(feature = "sqlite")]
            Open::Sqlite(tx) => {
                for row in rows {
                    bind_stored!(sqlx::query(INSERT), row)
                        .execute(&mut **tx)
                        .await?;
                }
            }
            #[cfg(feature = "postgres")]
            Open::Postgres(tx) => {
                for (i, row) in rows.enumerate() {
                    if i == 0 {
                        bind_stored!(sqlx::query(INSERT_FIRST_PG), row)
                            .bind(ORDER_LOCK)
                            .execute(&mut **tx)
                            .await?;
                    } else {
                        bind_stored!(sqlx::query(INSERT), row)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        on_backend!(self, Open, |tx| tx.commit().await)
    }
}

impl Pool {
    /// A pool of its own for the log's background work, on the same database: its connections
    /// belong to the log's thread. An in-memory SQLite database exists only in its own pool,
    /// which is then shared.
    pub(crate) fn sibling(&self) -> Self {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let options = p.connect_options();
                if options.get_filename() == std::path::Path::new(":memory:") {
                    return self.clone();
                }
                Pool::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(2)
                        .connect_lazy_with((*options).clone()),
                )
            }
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => Pool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(3)
                    .connect_lazy_with((*p.connect_options()).clone()),
            ),
        }
    }

    pub(crate) fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => "SQLite",
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => "PostgreSQL",
        }
    }

    /// Runs the log's schema (`CREATE TABLE IF NOT EXISTS`).
    pub(crate) async fn ensure_schema(&self) -> Result<(), sqlx::Error> {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                sqlx::raw_sql(super::schema::SQLITE_SCHEMA)
                    .execute(p)
                    .await?;
            }
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                // Two instances starting together must not both create the tables.
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(ORDER_LOCK)
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(super::schema::POSTGRES_SCHEMA)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The log's epoch, given on first use (the first instance to start writes `new`); `None`
    /// when the tables do not exist.
    pub(crate) async fn epoch(&self, new: u64) -> Result<Option<u64>, sqlx::Error> {
        let insert = "INSERT INTO sse_log (id, epoch, trimmed) VALUES (1, $1, 0) \
                      ON CONFLICT (id) DO NOTHING";
        let select = "SELECT epoch FROM sse_log WHERE id = 1";
        let result: Result<i64, sqlx::Error> = on_backend!(self, Pool, |p| {
            match sqlx::query(insert).bind(to_i64(new)).execute(p).await {
                Ok(_) => sqlx::query_scalar(select).fetch_one(p).await,
                Err(err) => Err(err),
            }
        });
        match result {
            Ok(epoch) => Ok(Some(to_u64(epoch))),
            Err(sqlx::Error::Database(err)) if missing_table(&*err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The newest position given out: the last row, or the last trimmed one when the table
    /// is empty.
    pub(crate) async fn newest(&self) -> Result<u64, sqlx::Error> {
        let sql = "SELECT CASE WHEN m > trimmed THEN m ELSE trimmed END FROM \
                   (SELECT COALESCE((SELECT MAX(seq) FROM sse_events), 0) AS m, trimmed \
                   FROM sse_log WHERE id = 1) AS t";
        let newest: Option<i64> = on_backend!(self, Pool, |p| sqlx::query_scalar(sql)
            .fetch_optional(p)
            .await?);
        Ok(newest.map_or(0, to_u64))
    }

    /// The position of the newest row whose publisher chose `wire_id` as its id on the wire
    /// (an index of the schema serves it).
    #[cfg(feature = "mercure")]
    pub(crate) async fn find_wire_id(&self, wire_id: &str) -> Result<Option<u64>, sqlx::Error> {
        let sql = "SELECT seq FROM sse_events WHERE wire_id = $1 ORDER BY seq DESC LIMIT 1";
        let seq: Option<i64> = on_backend!(self, Pool, |p| sqlx::query_scalar(sql)
            .bind(wire_id)
            .fetch_optional(p)
            .await?);
        Ok(seq.map(to_u64))
    }

    /// Positions up to this one were trimmed (0: none).
    pub(crate) async fn trimmed(&self) -> Result<u64, sqlx::Error> {
        let sql = "SELECT trimmed FROM sse_log WHERE id = 1";
        let trimmed: Option<i64> = on_backend!(self, Pool, |p| sqlx::query_scalar(sql)
            .fetch_optional(p)
            .await?);
        Ok(trimmed.map_or(0, to_u64))
    }

    /// Up to `limit` rows after `after`, up to and including `upto`, in order. A row whose
    /// columns cannot be read is returned as malformed, never skipped.
    pub(crate) async fn rows(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Row>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sse_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let fetched: Result<Vec<Columns>, sqlx::Error> = on_backend!(self, Pool, |p| {
            sqlx::query_as(&sql)
                .bind(to_i64(after))
                .bind(to_i64(upto))
                .bind(limit)
                .fetch_all(p)
                .await
        });
        match fetched {
            Ok(rows) => Ok(rows.into_iter().map(decode).collect()),
            Err(sqlx::Error::ColumnDecode { .. }) => self.rows_one_by_one(after, upto, limit).await,
            Err(err) => Err(err),
        }
    }

    /// [`Pool::rows`] when some row cannot be read: each row alone, so that only that one is
    /// malformed.
    async fn rows_one_by_one(
        &self,
        after: u64,
        upto: u64,
        limit: i64,
    ) -> Result<Vec<Row>, sqlx::Error> {
        let seqs_sql =
            "SELECT seq FROM sse_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";
        let one_sql = format!("SELECT {COLUMNS} FROM sse_events WHERE seq = $1");
        let seqs: Vec<i64> = on_backend!(self, Pool, |p| sqlx::query_scalar(seqs_sql)
            .bind(to_i64(after))
            .bind(to_i64(upto))
            .bind(limit)
            .fetch_all(p)
            .await?);
        let mut rows = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let one: Result<Option<Columns>, sqlx::Error> = on_backend!(self, Pool, |p| {
                sqlx::query_as(&one_sql).bind(seq).fetch_optional(p).await
            });
            match one {
                Ok(Some(columns)) => rows.push(decode(columns)),
                // Trimmed meanwhile: the caller's check of `trimmed` tells.
                Ok(None) => {}
                Err(sqlx::Error::ColumnDecode { source, .. }) => rows.push(Row {
                    seq: to_u64(seq),
                    content: Content::Malformed(format!("a column could not be read: {source}")),
                }),
                Err(err) => return Err(err),
            }
        }
        Ok(rows)
    }

    /// Takes or renews the relay's lease for `owner` until `for_` from now: `true` if it is
    /// `owner`'s (it was free, expired, or already its own).
    pub(crate) async fn lease(&self, owner: u64, for_: Duration) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE sse_log SET relay_owner = $1, relay_until = $2 \
                   WHERE id = 1 AND (relay_owner = $1 OR relay_until < $3)";
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(for_.as_millis()).unwrap_or(i64::MAX));
        let taken = on_backend!(self, Pool, |p| sqlx::query(sql)
            .bind(to_i64(owner))
            .bind(until)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(taken == 1)
    }

    /// Gives up `owner`'s lease, so that another instance relays at once.
    pub(crate) async fn release(&self, owner: u64) -> Result<(), sqlx::Error> {
        let sql = "UPDATE sse_log SET relay_until = 0 WHERE id = 1 AND relay_owner = $1";
        on_backend!(self, Pool, |p| {
            sqlx::query(sql).bind(to_i64(owner)).execute(p).await?;
        });
        Ok(())
    }

    /// The last position relayed.
    pub(crate) async fn relayed(&self) -> Result<u64, sqlx::Error> {
        let sql = "SELECT relayed FROM sse_log WHERE id = 1";
        let relayed: Option<i64> = on_backend!(self, Pool, |p| sqlx::query_scalar(sql)
            .fetch_optional(p)
            .await?);
        Ok(relayed.map_or(0, to_u64))
    }

    /// Marks the rows up to `seq` relayed (never backwards).
    pub(crate) async fn mark_relayed(&self, seq: u64) -> Result<(), sqlx::Error> {
        let sql = "UPDATE sse_log SET relayed = $1 WHERE id = 1 AND relayed < $1";
        on_backend!(self, Pool, |p| {
            sqlx::query(sql).bind(to_i64(seq)).execute(p).await?;
        });
        Ok(())
    }

    /// Deletes what retention no longer keeps: beyond `count` rows, beyond about `bytes` of
    /// events, older than `age`, never past `keep_after` (rows not yet relayed). Records the last position removed first, so that a replay
    /// reading concurrently sees that it is gone. Returns how many rows were removed.
    pub(crate) async fn trim(
        &self,
        count: usize,
        bytes: usize,
        age: Option<Duration>,
        keep_after: u64,
    ) -> Result<u64, sqlx::Error> {
        let by_count = "SELECT seq FROM sse_events ORDER BY seq DESC LIMIT 1 OFFSET $1";
        let by_bytes =
            "SELECT seq FROM (SELECT seq, SUM(LENGTH(data) + LENGTH(name) + LENGTH(topics)) \
                        OVER (ORDER BY seq DESC) AS total FROM sse_events) AS t \
                        WHERE total > $1 ORDER BY seq DESC LIMIT 1";
        let by_age = "SELECT MAX(seq) FROM sse_events WHERE created_ms < $1";
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let cutoff = age
            .map(|age| now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)));
        let cut: i64 = on_backend!(self, Pool, |p| {
            let a: Option<i64> = sqlx::query_scalar(by_count)
                .bind(count)
                .fetch_optional(p)
                .await?;
            let b: Option<i64> = sqlx::query_scalar(by_bytes)
                .bind(bytes)
                .fetch_optional(p)
                .await?;
            let c: Option<i64> = match cutoff {
                Some(cutoff) => sqlx::query_scalar(by_age).bind(cutoff).fetch_one(p).await?,
                None => None,
            };
            a.into_iter().chain(b).chain(c).max().unwrap_or(0)
        });
        let cut = cut.min(to_i64(keep_after));
        if cut <= 0 {
            return Ok(0);
        }
        let mark = "UPDATE sse_log SET trimmed = $1 WHERE id = 1 AND trimmed < $1";
        let delete = "DELETE FROM sse_events WHERE seq <= $1";
        on_backend!(self, Pool, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(mark).bind(cut).execute(&mut *tx).await?;
            let removed = sqlx::query(delete)
                .bind(cut)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(removed)
        })
    }
}

/// Whether a database error says that a table does not exist (SQLite's message, PostgreSQL's
/// SQLSTATE 42P01 `undefined_table`).
fn missing_table(err: &dyn sqlx::error::DatabaseError) -> bool {
    err.code().as_deref() == Some("42P01") || err.message().contains("no such table")
}

/// A row's columns as an event: a malformed name or topic list makes it malformed.
fn decode((seq, name, data, json, topics, private, origin, wire_id, retry): Columns) -> Row {
    let seq = to_u64(seq);
    if name.is_empty() {
        return Row {
            seq,
            content: Content::Marker(data),
        };
    }
    let event = (|| {
        crate::wire::validate_event_name(&name).map_err(|err| err.to_string())?;
        let topics: Vec<String> =
            serde_json::from_str(&topics).map_err(|err| format!("topics: {err}"))?;
        Ok(Append {
            name,
            data,
            json: json != 0,
            route: std::sync::Arc::new(crate::topic::Route {
                topics: topics.into_iter().map(Into::into).collect(),
                private: private != 0,
                origin: origin.map(Into::into),
                everyone: false,
            }),
            wire_id,
            retry: retry.map(to_u64),
        })
    })();
    Row {
        seq,
        content: event.map_or_else(Content::Malformed, Content::Event),
    }
}
