//! PostgreSQL, for several instances on one real database: opening a pool and bringing the
//! schema up to date.
//!
//! Concurrent starts need nothing of our own here: sqlx's migrator takes a session-level
//! `pg_advisory_lock` (its id derived from the database's name) before it reads
//! `_sqlx_migrations`, and releases it after the last migration, so instances starting together
//! apply each migration once, one after the other; the others wait for the lock, then find
//! nothing to do. Each migration runs in a transaction with its bookkeeping row. The lock is
//! what makes this safe: with `Migrator::locking` off, two instances started together failed
//! ten races out of ten (both creating `_sqlx_migrations` at once), so keep it on.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The PostgreSQL migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Opens a pool on `url` (`postgres://user:password@host:port/database`) and brings the schema
/// up to date.
pub(super) async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
