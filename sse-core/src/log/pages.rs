//! The replay task of a server engine (Redis, NATS), whatever the engine: it serves one
//! `Last-Event-ID` replay page per request from the streams, keeps first pages briefly for
//! the clients that reconnect together with the same id (after a deploy, every client does),
//! and makes its connection again after a failure. The engine says how to connect and how to
//! read a page ([`PageSource`]).

use std::collections::VecDeque;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::control::{Control, ReplayReply};
use super::{reason, ReplayError, ReplayPage, Senders, Sink};
use crate::wire::EventId;

/// Requests waiting for the replay task; past this, a replay is answered with a reset.
pub(crate) const QUEUE: usize = 1024;
/// First pages kept for clients that ask for the same one.
const CACHE_PAGES: usize = 64;
const CACHE_FOR: Duration = Duration::from_secs(1);

/// One page asked for by a subscriber's stream.
pub(crate) struct Request {
    pub(crate) key: PageKey,
    /// `None` for a first page; else the previous page's senders.
    pub(crate) seen: Option<Senders>,
    pub(crate) reply: ReplayReply,
}

/// Which page: after an event, up to another, at most `max` events.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageKey {
    pub(crate) after: EventId,
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

/// Serves `requests` until the engine stops or its broadcaster is dropped.
pub(crate) async fn run<S: PageSource, T: Clone + 'static>(
    source: &S,
    ctl: &Control<T>,
    sink: &Weak<dyn Sink>,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut stop = ctl.stop.subscribe();
    let mut conn: Option<S::Conn> = None;
    let mut cache: VecDeque<(PageKey, Instant, Arc<ReplayPage>)> = VecDeque::new();
    loop {
        let request = tokio::select! {
            request = requests.recv() => request,
            _ = stop.changed() => None,
        };
        let Some(request) = request else {
            return;
        };
        if ctl.stopping(sink) {
            return;
        }
        // Only first pages are shared: later ones depend on what the client's replay saw.
        let first = request.seen.is_none();
        cache.retain(|(_, at, _)| at.elapsed() < CACHE_FOR);
        if let Some((_, _, page)) = cache
            .iter()
            .find(|(key, _, _)| first && *key == request.key)
        {
            let _ = request.reply.send(Ok(ReplayPage::clone(page)));
            continue;
        }
        if conn.is_none() || (first && S::CONNECT_FOR_FIRST_PAGE) {
            conn = match source.connect().await {
                Ok(c) => Some(c),
                Err(err) => {
                    source.failed(&err);
                    None
                }
            };
        }
        let Some(c) = &mut conn else {
            let _ = request.reply.send(Err(reason::UNREACHABLE));
            continue;
        };
        let fetched = source.fetch(c, request.key, request.seen);
        let result = match tokio::time::timeout(S::TIMEOUT, fetched).await {
            Ok(Ok(result)) => result,
            Ok(Err(err)) => {
                source.failed(&err);
                conn = None;
                Err(reason::UNREACHABLE)
            }
            Err(_) => {
                source.failed(&"timed out");
                conn = None;
                Err(reason::UNREACHABLE)
            }
        };
        if let (Ok(page), true) = (&result, first) {
            if cache.len() == CACHE_PAGES {
                cache.pop_front();
            }
            cache.push_back((request.key, Instant::now(), Arc::new(page.clone())));
        }
        // The stream may have ended meanwhile: nobody to answer.
        let _ = request.reply.send(result);
    }
}
