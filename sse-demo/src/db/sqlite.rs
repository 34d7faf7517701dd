//! SQLite, the embedded default: opening a file (or memory) and bringing its schema up to date,
//! safely when several instances start on one fresh file at the same moment.
//!
//! Two instances racing used to fail in two ways (issue 18), each with its own cause:
//!
//! - **`table users already exists`**: sqlx's migrator does not lock SQLite (`lock()` is a
//!   no-op there). Both instances read an empty `_sqlx_migrations`, both decide to apply
//!   migration 1; the second's transaction waits for the first's write lock, then runs
//!   `CREATE TABLE users` on a schema that now has it. The check and the apply were not one
//!   atomic step. Here the whole migrator runs inside one `BEGIN IMMEDIATE` transaction: the
//!   write lock is taken *before* anything is read, so the second instance waits (busy
//!   timeout) and then finds every migration applied. SQLite's DDL is transactional, and
//!   sqlx's per-migration transactions become savepoints inside ours.
//! - **`database is locked`**: SQLite answers `SQLITE_BUSY` at once, without waiting in the
//!   busy handler, when waiting could deadlock: two connections both reading and both
//!   upgrading to a write, as when both switch a fresh file to `journal_mode=WAL` on their
//!   first connect. The busy timeout cannot cover that case, so opening and migrating retry
//!   on `SQLITE_BUSY` until [`START_DEADLINE`]; both steps are safe to repeat (the WAL switch
//!   is idempotent, and a failed migration transaction rolls back whole).

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqlitePool};

/// The SQLite migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's lock (SQLite's busy handler).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening and migrating keep retrying the busy errors the busy handler does not
/// cover; below the 15 s within which an instance is expected to listen.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Opens a pool on `url` (a `sqlite:` URL or a plain file path; a missing file is created)
/// and brings the schema up to date.
pub(super) async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url)?
    } else {
        SqliteConnectOptions::new().filename(url)
    }
    .create_if_missing(true)
    .foreign_keys(true)
    .busy_timeout(BUSY_TIMEOUT);
    let pool = if in_memory {
        // An in-memory database lives as long as a connection to it: keep exactly one, forever,
        // so every request sees the same data.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?
    } else {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        retry_busy("open", || {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.clone())
        })
        .await?
    };
    retry_busy("migrate", || migrate(&pool)).await?;
    Ok(pool)
}

/// Runs every pending migration inside one `BEGIN IMMEDIATE` transaction, so that reading
/// what is applied and applying the rest happen under one write lock.
async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    MIGRATOR.run(&mut *tx).await?;
    tx.commit().await
}

/// Runs `step` until it succeeds, fails otherwise than with `SQLITE_BUSY`, or
/// [`START_DEADLINE`] has passed.
async fn retry_busy<T, F>(what: &str, mut step: impl FnMut() -> F) -> Result<T, sqlx::Error>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = Instant::now() + START_DEADLINE;
    let mut pause = Duration::from_millis(10);
    loop {
        match step().await {
            Err(err) if is_busy(&err) && Instant::now() + pause < deadline => {
                tracing::info!(%err, "database busy (another instance starting?); {what} again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            result => return result,
        }
    }
}

/// Whether `err` is `SQLITE_BUSY` (any extended code), also when the migrator wraps it.
fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 5),
        sqlx::Error::Migrate(migrate) => match migrate.as_ref() {
            MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => is_busy(err),
            _ => false,
        },
        _ => false,
    }
}
