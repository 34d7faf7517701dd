//! What a server engine's (Redis, NATS) replay task takes and asks of the engine: the page
//! requests from the streams, and how the engine connects and reads a page ([`PageSource`]).
//! The task itself, the same for every engine, is [`EngineLink::serve_replays`].
//!
//! [`EngineLink::serve_replays`]: super::link::EngineLink::serve_replays

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{ReplayError, ReplayFrom, ReplayPage, Senders};
use crate::wire::EventId;

/// Requests waiting for the replay task; past this, a replay is answered with a reset.
pub(crate) const QUEUE: usize = 1024;

/// Most events one replay page holds, whatever a stream asks for.
pub(crate) const MAX_PAGE: usize = 1024;

/// One replay page's answer, sent back to the stream that asked.
pub(crate) type ReplayReply = oneshot::Sender<Result<ReplayPage, ReplayError>>;

/// One page asked for by a subscriber's stream.
pub(crate) struct Request {
    pub(crate) key: PageKey,
    /// `None` for a first page; else the previous page's senders.
    pub(crate) seen: Option<Senders>,
    pub(crate) reply: ReplayReply,
}

/// Which page: after an event (or from the oldest), up to another, at most `max` events.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageKey {
    pub(crate) from: ReplayFrom,
    pub(crate) upto: EventId,
    pub(crate) max: usize,
}

/// An engine's side of the replay task.
pub(crate) trait PageSource {
    /// What a page is read through, kept from one request to the next.
    type Conn;
    type Error: Display;

    /// How long reading one page may take before the connection is given up.
    const TIMEOUT: Duration;

    /// Whether a first page needs a connection made anew (its answer may depend on state
    /// read when connecting, such as the stream's epoch).
    const CONNECT_FOR_FIRST_PAGE: bool;

    fn connect(&self) -> impl Future<Output = Result<Self::Conn, Self::Error>>;

    /// One page: `Ok(Err(_))` when the store cannot serve it (a reset for the client),
    /// `Err(_)` when the store failed.
    fn fetch(
        &self,
        conn: &mut Self::Conn,
        key: PageKey,
        seen: Option<Senders>,
    ) -> impl Future<Output = Result<Result<ReplayPage, ReplayError>, Self::Error>>;

    /// Logs and counts a failure of the store.
    fn failed(&self, err: &dyn Display);
}
