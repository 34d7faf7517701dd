//! The users table: connecting, migrating, and one function per query.

mod sqlite;

use serde::Serialize;
use sqlx::{FromRow, SqlitePool};

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
}

/// The columns of [`User`], for `SELECT` and `RETURNING`.
macro_rules! columns {
    () => {
        "id, username, email, version, created_at, updated_at"
    };
}

/// Opens a pool on `url` and brings the schema up to date.
///
/// `url` is a `sqlite:` URL (`sqlite://data/app.db`, `sqlite::memory:`) or a plain file path;
/// a missing file is created. Safe when several instances start on one database at once.
pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    sqlite::connect(url).await
}

/// All users, oldest first.
pub async fn list(pool: &SqlitePool) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM users ORDER BY id"))
        .fetch_all(pool)
        .await
}

/// The user with this id, if any.
pub async fn get(pool: &SqlitePool, id: i64) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Stores a new user.
pub async fn insert(pool: &SqlitePool, username: &str, email: &str) -> Result<User, DbError> {
    sqlx::query_as(concat!(
        "INSERT INTO users (username, email) VALUES (?, ?) RETURNING ",
        columns!()
    ))
    .bind(username)
    .bind(email)
    .fetch_one(pool)
    .await
    .map_err(|err| taken(err, username))
}

/// Changes the given fields of a user (`None` keeps the field); `Ok(None)` if there is no such
/// user.
pub async fn update(
    pool: &SqlitePool,
    id: i64,
    username: Option<&str>,
    email: Option<&str>,
) -> Result<Option<User>, DbError> {
    sqlx::query_as(concat!(
        "UPDATE users SET username = COALESCE(?, username), email = COALESCE(?, email), ",
        "version = version + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ",
        "WHERE id = ? RETURNING ",
        columns!()
    ))
    .bind(username)
    .bind(email)
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(|err| taken(err, username.unwrap_or_default()))
}

/// Deletes a user; `false` if there was none.
pub async fn delete(pool: &SqlitePool, id: i64) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// The only unique constraint is on `username`.
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
        let ada = insert(&pool, "ada", "ada@example.com").await?;
        assert_eq!((ada.id, ada.version), (1, 1));
        assert!(matches!(
            insert(&pool, "ADA", "x@example.com").await,
            Err(DbError::UsernameTaken(name)) if name == "ADA"
        ));
        let renamed = update(&pool, ada.id, Some("ada.l"), None).await?;
        let renamed = renamed.ok_or(sqlx::Error::RowNotFound)?;
        assert_eq!(
            (renamed.username.as_str(), renamed.email.as_str()),
            ("ada.l", "ada@example.com")
        );
        assert_eq!(renamed.version, 2);
        assert_eq!(list(&pool).await?, vec![renamed]);
        assert!(update(&pool, 99, Some("x"), None).await?.is_none());
        assert!(delete(&pool, ada.id).await?);
        assert!(!delete(&pool, ada.id).await?);
        assert!(get(&pool, ada.id).await?.is_none());
        Ok(())
    }
}
