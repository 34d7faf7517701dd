//! The users table on SQLite (the embedded default) or PostgreSQL: connecting, migrating, and
//! one function per query.
//!
//! [`Db`] holds either pool. Each query is written once, with `$1`-style placeholders (SQLite
//! reads them too) and `RETURNING` (both have it), and [`on_pool!`] expands it for each
//! backend, so each is type-checked against its own driver. Only what SQL cannot say alike
//! differs: the migrations (`migrations/sqlite`, `migrations/postgres`) and the current time
//! ([`Db::now`]).

mod postgres;
mod sqlite;

use serde::Serialize;
use sqlx::{FromRow, PgPool, SqlitePool};
use sse_core::sql::{Connection, EventLog, EventLogError, Tx, TxError};

/// A stored user, as the API returns it and as events carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, FromRow)]
pub struct User {
    /// Assigned by the database, never reused.
    pub id: i64,
    /// Unique, compared without regard to case.
    pub username: String,
    /// A syntactically plausible address.
    pub email: String,
    /// 1 when created, incremented by every update: lets a client drop stale updates.
    pub version: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The username is already taken (by another user, for an update).
    #[error("username {0:?} is already taken")]
    UsernameTaken(String),
    /// Anything else from the database.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// The transaction has ended, or is on a database the demo does not know.
    #[error(transparent)]
    Tx(#[from] TxError),
}

/// The columns of [`User`], for `SELECT` and `RETURNING`.
macro_rules! columns {
    () => {
        "id, username, email, version, created_at, updated_at"
    };
}

/// A pool on the demo's database, SQLite or PostgreSQL. Cheap to clone: clones share the pool.
#[derive(Clone, Debug)]
pub enum Db {
    /// An embedded SQLite file, or memory.
    Sqlite(SqlitePool),
    /// A PostgreSQL server, which several instances can share.
    Postgres(PgPool),
}

/// Runs `$body` with `$conn` bound to the connection of the transaction `$tx` and `$now` to
/// that backend's SQL for the current time: one copy of a write, compiled once per driver.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident, $now:ident| $body:expr) => {{
        let mut held = $tx.conn().await?;
        match held.get() {
            Connection::Sqlite($conn) => {
                let $now = SQLITE_NOW;
                $body
            }
            Connection::Postgres($conn) => {
                let $now = POSTGRES_NOW;
                $body
            }
            _ => return Err(TxError::Ended.into()),
        }
    }};
}

const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
const POSTGRES_NOW: &str = r#"to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

/// Runs `$body` with `$pool` bound to the pool of `$db`'s backend: one copy of a query, compiled
/// once per driver.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// Opens a pool on `url` and brings the schema up to date.
///
/// `url` is a `postgres://` (or `postgresql://`) URL, a `sqlite:` URL (`sqlite://data/app.db`,
/// `sqlite::memory:`), or a plain file path for SQLite; a missing SQLite file is created. Safe
/// when several instances start on one database at the same moment.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => Ok(Db::Postgres(postgres::connect(url).await?)),
        Some(scheme) if scheme != "sqlite" => Err(sqlx::Error::Configuration(
            format!("unsupported database {scheme:?}: use a sqlite: or postgres:// URL").into(),
        )),
        _ => Ok(Db::Sqlite(sqlite::connect(url).await?)),
    }
}

impl Db {
    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    /// Waits for the connections in use, then closes them all.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// The event log in this database (its tables come with the migrations): the
    /// broadcaster's history, and where the handlers' transactions write their events.
    pub async fn event_log(&self) -> Result<EventLog, EventLogError> {
        on_pool!(self, |pool| EventLog::open(pool).await)
    }
}

/// All users, oldest first.
pub async fn list(db: &Db) -> Result<Vec<User>, sqlx::Error> {
    let sql = concat!("SELECT ", columns!(), " FROM users ORDER BY id");
    on_pool!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await)
}

/// The user with this id, if any.
pub async fn get(db: &Db, id: i64) -> Result<Option<User>, sqlx::Error> {
    let sql = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");
    on_pool!(db, |pool| sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// Stores a new user, in the handler's transaction.
pub async fn insert(tx: &Tx, username: &str, email: &str) -> Result<User, DbError> {
    let sql = concat!(
        "INSERT INTO users (username, email) VALUES ($1, $2) RETURNING ",
        columns!()
    );
    on_tx!(tx, |conn, _now| sqlx::query_as(sql)
        .bind(username)
        .bind(email)
        .fetch_one(conn)
        .await)
    .map_err(|err| taken(err, username))
}

/// Changes the given fields of a user (`None` keeps the field); `Ok(None)` if there is no such
/// user.
pub async fn update(
    tx: &Tx,
    id: i64,
    username: Option<&str>,
    email: Option<&str>,
) -> Result<Option<User>, DbError> {
    let sql = |now: &str| {
        format!(
            concat!(
                "UPDATE users SET username = COALESCE($1, username), email = COALESCE($2, email), ",
                "version = version + 1, updated_at = {now} WHERE id = $3 RETURNING ",
                columns!()
            ),
            now = now
        )
    };
    on_tx!(tx, |conn, now| sqlx::query_as(&sql(now))
        .bind(username)
        .bind(email)
        .bind(id)
        .fetch_optional(conn)
        .await)
    .map_err(|err| taken(err, username.unwrap_or_default()))
}

/// Deletes a user; `false` if there was none.
pub async fn delete(tx: &Tx, id: i64) -> Result<bool, DbError> {
    let sql = "DELETE FROM users WHERE id = $1";
    let deleted = on_tx!(tx, |conn, _now| sqlx::query(sql)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected());
    Ok(deleted > 0)
}

/// The only unique constraint is on `username`. sqlx reports SQLite's
/// `SQLITE_CONSTRAINT_UNIQUE` and PostgreSQL's SQLSTATE 23505 (`unique_violation`) alike.
fn taken(err: sqlx::Error, username: &str) -> DbError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            DbError::UsernameTaken(username.to_owned())
        }
        _ => DbError::Sqlx(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn crud_round_trip_in_memory() -> Result<(), DbError> {
        let pool = connect("sqlite::memory:").await?;
        assert_eq!(pool.backend(), "SQLite");
        let log = pool
            .event_log()
            .await
            .expect("the migrations made the event log");
        let tx = log.begin().await?;
        let ada = insert(&tx, "ada", "ada@example.com").await?;
        assert_eq!((ada.id, ada.version), (1, 1));
        assert!(matches!(
            insert(&tx, "ADA", "x@example.com").await,
            Err(DbError::UsernameTaken(name)) if name == "ADA"
        ));
        let renamed = update(&tx, ada.id, Some("ada.l"), None).await?;
        let renamed = renamed.ok_or(sqlx::Error::RowNotFound)?;
        assert_eq!(
            (renamed.username.as_str(), renamed.email.as_str()),
            ("ada.l", "ada@example.com")
        );
        assert_eq!(renamed.version, 2);
        assert!(update(&tx, 99, Some("x"), None).await?.is_none());
        tx.commit().await?;
        assert_eq!(list(&pool).await?, vec![renamed]);
        let tx = log.begin().await?;
        assert!(delete(&tx, ada.id).await?);
        assert!(!delete(&tx, ada.id).await?);
        tx.commit().await?;
        assert!(get(&pool, ada.id).await?.is_none());
        Ok(())
    }

    #[test]
    fn the_migrations_carry_the_event_logs_schema() {
        assert_eq!(
            concat!(
                include_str!("../../migrations/sqlite/0002_sse_event_log.sql"),
                include_str!("../../migrations/sqlite/0003_sse_event_log_wire_id.sql"),
            ),
            sse_core::sql::SQLITE_SCHEMA
        );
        assert_eq!(
            concat!(
                include_str!("../../migrations/postgres/0002_sse_event_log.sql"),
                include_str!("../../migrations/postgres/0003_sse_event_log_wire_id.sql"),
            ),
            sse_core::sql::POSTGRES_SCHEMA
        );
    }

    #[tokio::test]
    async fn other_schemes_are_refused_not_taken_for_a_file() {
        let err = connect("mysql://localhost/db").await.err();
        assert!(
            matches!(err, Some(sqlx::Error::Configuration(_))),
            "{err:?}"
        );
    }
}
