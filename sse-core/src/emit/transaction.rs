//! `#[emit_event(.., transactional)]`: the handler's events are collected when it succeeds,
//! written in its [`Tx`] and committed with its change; a failure of the handler, of an
//! event, or of the commit leaves neither. Also the [`Tx`] extractor.

use std::sync::{Arc, Mutex, PoisonError};

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_core::future::LocalBoxFuture;

use super::capture::CapturedEvent;
use super::scope::{with_target, Target};
use crate::engine::sql::{Tx, TxHandle};
use crate::engine::Append;
use crate::error::TxError;
use crate::fanout::{Broadcaster, EmitFailure};

/// The events of one transactional handler, collected before the commit.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) events: Vec<Append>,
    /// The first event that could not be made: the transaction rolls back.
    pub(crate) failure: Option<TxError>,
    /// What a test's [`capture`](crate::testing::capture) records once committed.
    pub(crate) captured: Vec<CapturedEvent>,
    /// Whether a capture is under way (it then wants the payloads as values).
    pub(crate) capturing: bool,
    /// The broadcaster of the handler's `App`, whose counters count these events.
    pub(crate) broadcaster: Option<Broadcaster>,
}

/// The events collected from a handler's output, for [`commit`].
#[doc(hidden)]
pub struct Collected {
    pending: Arc<Mutex<Pending>>,
    capture: Option<Arc<Mutex<Vec<CapturedEvent>>>>,
}

/// The handle the generated code keeps to commit the handler's transaction.
#[doc(hidden)]
pub fn tx_handle(tx: &Tx) -> TxHandle {
    tx.handle()
}

/// Runs the generated `emit` calls with the events going to the transaction instead of the
/// broadcaster.
#[doc(hidden)]
pub fn collect(emit: impl FnOnce()) -> Collected {
    let (capture, broadcaster) = match super::scope::current_target() {
        Some(Target::Capture(sink)) => (Some(sink), None),
        Some(Target::Broadcaster(broadcaster)) => (None, Some(broadcaster)),
        _ => (None, None),
    };
    let pending = Arc::new(Mutex::new(Pending {
        capturing: capture.is_some(),
        broadcaster,
        ..Pending::default()
    }));
    with_target(Target::Pending(pending.clone()), emit);
    Collected { pending, capture }
}

/// What a transactional handler returns: a `Result` whose error can say that the commit failed.
#[diagnostic::on_unimplemented(
    message = "a `transactional` handler must return `Result<_, E>` with `E: From<sse_core::sql::TxError>`",
    label = "the commit's failure must be expressible in this type",
    note = "implement `From<sse_core::sql::TxError>` for the error type, or return `Result<_, sse_core::sql::TxError>`"
)]
pub trait TxOutcome {
    /// Whether the handler succeeded (its change is to be committed).
    fn succeeded(&self) -> bool;
    /// The handler's answer when the commit failed.
    fn failed(err: TxError) -> Self;
}

impl<T, E: From<TxError>> TxOutcome for Result<T, E> {
    fn succeeded(&self) -> bool {
        self.is_ok()
    }

    fn failed(err: TxError) -> Self {
        Err(E::from(err))
    }
}

/// Commits the handler's change with its events when it succeeded; rolls both back when it
/// failed, when an event could not be made, or when the commit fails (the answer then says
/// so).
#[doc(hidden)]
pub async fn commit<R: TxOutcome>(handle: TxHandle, collected: Collected, output: R) -> R {
    if !output.succeeded() {
        // Dropping the transaction rolls it back.
        return output;
    }
    let pending = std::mem::take(
        &mut *collected
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    if let Some(failure) = pending.failure {
        tracing::error!(%failure, "change rolled back: its event could not be made");
        return R::failed(failure);
    }
    match handle.commit(&pending.events).await {
        Ok(()) => {
            if let Some(broadcaster) = &pending.broadcaster {
                for event in &pending.events {
                    broadcaster.counters().published(
                        &event.name,
                        &event.route,
                        None,
                        event.data.len(),
                    );
                }
            }
            if let Some(capture) = collected.capture {
                capture
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(pending.captured);
            }
            output
        }
        Err(err) => {
            if let Some(broadcaster) = &pending.broadcaster {
                for _ in &pending.events {
                    broadcaster.counters().emit_failed(EmitFailure::Commit);
                }
            }
            tracing::error!(%err, "the handler's change and its events were not committed");
            R::failed(err)
        }
    }
}

/// A handler's [`Tx`]: a transaction on the database of the registered broadcaster's
/// [`EventLog`](crate::sql::EventLog). Fails with 503 when the database cannot begin one,
/// and 500 when the broadcaster has no event log.
impl FromRequest for Tx {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let log = req
            .app_data::<web::Data<Broadcaster>>()
            .and_then(|events| events.event_log().cloned());
        Box::pin(async move {
            let Some(log) = log else {
                tracing::error!(err = %TxError::NoEventLog, "cannot begin a transaction");
                return Err(TxError::NoEventLog.into());
            };
            log.begin().await.map_err(|err| {
                tracing::error!(%err, "cannot begin a transaction");
                err.into()
            })
        })
    }
}

/// 503 when the database failed (try again later), 500 otherwise; the body says what
/// happened without the database's own message.
impl ResponseError for TxError {
    fn status_code(&self) -> StatusCode {
        match self {
            TxError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            TxError::Database(_) => "the change was not saved: the database failed",
            TxError::Event { .. } => "the change was not saved: its event could not be made",
            _ => "the change was not saved",
        };
        HttpResponse::build(self.status_code()).body(message)
    }
}
