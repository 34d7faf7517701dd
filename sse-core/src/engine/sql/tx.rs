//! [`Tx`]: a transaction on the application's database that carries events. The handler
//! writes its change through it; `#[emit_event(.., transactional)]` then writes the events in
//! it and commits, so the change and its events become visible together or not at all.

use std::sync::Arc;

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::backend::Open;
use super::EventLog;
use crate::engine::Append;
use crate::error::TxError;

fn database(err: sqlx::Error) -> TxError {
    TxError::Database(Box::new(err))
}

/// A transaction whose events are written with it. As a handler parameter (an actix-web
/// extractor) it begins a transaction on the database of the broadcaster's
/// [`EventLog`]; `#[emit_event(.., transactional)]` commits it when the handler succeeds,
/// with the handler's events, and rolls it back when it fails.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")] mod example {
/// use actix_web::web::Json;
/// use sse_core::{emit_event, sql::{Tx, TxError}};
///
/// #[derive(serde::Serialize)]
/// struct Note { id: i64 }
///
/// #[emit_event("note_created", topic = "notes/{id}", transactional)]
/// async fn create(tx: Tx) -> Result<Json<Note>, TxError> {
///     let mut conn = tx.conn().await?;
///     let conn = conn.sqlite().ok_or(TxError::NoEventLog)?;
///     let id: i64 = sqlx::query_scalar("INSERT INTO notes DEFAULT VALUES RETURNING id")
///         .fetch_one(conn)
///         .await
///         .map_err(|e| TxError::Database(e.into()))?;
///     Ok(Json(Note { id }))
/// }
/// # }
/// ```
pub struct Tx {
    handle: TxHandle,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("log", &self.handle.0.log)
            .finish_non_exhaustive()
    }
}

/// What `#[emit_event(.., transactional)]` keeps of a [`Tx`] to commit it after the
/// handler's body.
#[doc(hidden)]
#[derive(Clone)]
pub struct TxHandle(Arc<State>);

struct State {
    open: Mutex<Option<Open>>,
    log: EventLog,
    /// Committed by `#[emit_event(.., transactional)]`, never by the handler.
    managed: std::sync::atomic::AtomicBool,
}

/// The connection of a [`Tx`], held while the handler uses it.
pub struct TxConn<'a> {
    open: MappedMutexGuard<'a, Open>,
}

/// The driver's connection inside a [`TxConn`], to run queries in the transaction.
#[non_exhaustive]
pub enum Connection<'a> {
    /// On SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(&'a mut sqlx::SqliteConnection),
    /// On PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(&'a mut sqlx::PgConnection),
}

impl Tx {
    pub(crate) async fn begin(log: &EventLog) -> Result<Self, TxError> {
        let open = Open::begin(log.pool()).await.map_err(database)?;
        Ok(Self {
            handle: TxHandle(Arc::new(State {
                open: Mutex::new(Some(open)),
                log: log.clone(),
                managed: std::sync::atomic::AtomicBool::new(false),
            })),
        })
    }

    /// The transaction's connection, for the handler's queries.
    pub async fn conn(&self) -> Result<TxConn<'_>, TxError> {
        let guard = self.handle.0.open.lock().await;
        MutexGuard::try_map(guard, Option::as_mut)
            .map(|open| TxConn { open })
            .map_err(|_| TxError::Ended)
    }

    /// Commits the transaction, without events, outside a `transactional` handler (a test,
    /// a background job). In a `transactional` handler the macro commits, with the handler's events; calling this
    /// there fails with [`TxError::Ended`] and commits nothing.
    pub async fn commit(self) -> Result<(), TxError> {
        if self
            .handle
            .0
            .managed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(TxError::Ended);
        }
        self.handle.commit(&[]).await
    }

    /// What the macro commits after the handler's body; from now on only it commits.
    pub(crate) fn handle(&self) -> TxHandle {
        self.handle
            .0
            .managed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.clone()
    }
}

impl TxConn<'_> {
    /// The driver's connection.
    pub fn get(&mut self) -> Connection<'_> {
        match &mut *self.open {
            #[cfg(feature = "sqlite")]
            Open::Sqlite(tx) => Connection::Sqlite(&mut *tx),
            #[cfg(feature = "postgres")]
            Open::Postgres(tx) => Connection::Postgres(&mut *tx),
        }
    }

    /// The SQLite connection, if the log is on SQLite.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match self.get() {
            Connection::Sqlite(c) => Some(c),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The PostgreSQL connection, if the log is on PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self.get() {
            Connection::Postgres(c) => Some(c),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

impl TxHandle {
    /// Writes `events` in the transaction and commits; the followers of this process read
    /// them at once. Dropping the handle instead rolls back.
    pub(crate) async fn commit(self, events: &[Append]) -> Result<(), TxError> {
        let open = self.0.open.lock().await.take();
        let mut open = open.ok_or(TxError::Ended)?;
        if !events.is_empty() {
            let events: Vec<&Append> = events.iter().collect();
            open.insert(&events, None).await.map_err(database)?;
        }
        open.commit().await.map_err(database)?;
        if !events.is_empty() {
            self.0.log.committed();
        }
        Ok(())
    }
}
