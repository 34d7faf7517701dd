//! What a live inspector page shows: streams open per topic selection, and the last events
//! published. Off until [`enable`] is called; until then each hook costs one relaxed load.
//!
//! ```
//! use sse_core::observe::inspect;
//!
//! inspect::enable();
//! let events = sse_core::Broadcaster::builder().keep_alive(None).build();
//! let update = sse_core::Event::new("user_updated").json(&1).topic("users/1");
//! events.publish_event(update).unwrap();
//! let _stream = events.subscribe(None).unwrap();
//! let snapshot = inspect::snapshot();
//! assert_eq!(snapshot.recent.last().unwrap().name, "user_updated");
//! assert!(snapshot.streams.iter().any(|t| t.topics == "*" && t.streams >= 1));
//! ```
//!
//! The record is per process (every broadcaster in it), as is the inspector.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::topic::{Filter, Route};
use crate::wire::EventId;

/// How many of the last events are kept.
pub const RECENT: usize = 50;

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<State> = Mutex::new(State {
    streams: None,
    recent: VecDeque::new(),
});

struct State {
    /// Open streams by topic selection (`None` until the first stream is recorded).
    streams: Option<HashMap<Box<str>, usize>>,
    recent: VecDeque<RecentEvent>,
}

fn state() -> MutexGuard<'static, State> {
    // A panic cannot leave the record inconsistent: each update is one step.
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts recording streams and events for [`snapshot`]. Streams already open are not
/// counted.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    // Relaxed: a stream or event racing the first `enable` may go unrecorded, nothing worse.
    ENABLED.load(Ordering::Relaxed)
}

/// One of the last events published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RecentEvent {
    /// The event name.
    pub name: String,
    /// Its topics.
    pub topics: Vec<String>,
    /// Whether it is private.
    pub private: bool,
    /// Its id; `None` when an event log engine assigns it later.
    pub id: Option<String>,
    /// Size of the encoded frame (of the data, with an engine).
    pub bytes: usize,
    /// When it was published, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Streams open with one topic selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TopicStreams {
    /// The selectors, comma-separated; `*` for streams that chose none (every public event).
    pub topics: String,
    /// How many streams are open with them.
    pub streams: usize,
}

/// What [`snapshot`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Open streams by topic selection, most first.
    pub streams: Vec<TopicStreams>,
    /// The last events, oldest first (at most [`RECENT`]).
    pub recent: Vec<RecentEvent>,
}

/// The streams and events recorded since [`enable`].
pub fn snapshot() -> Snapshot {
    let state = state();
    let mut streams: Vec<TopicStreams> = (state.streams.iter().flatten())
        .filter(|(_, n)| **n > 0)
        .map(|(topics, n)| TopicStreams {
            topics: topics.to_string(),
            streams: *n,
        })
        .collect();
    streams.sort_by(|a, b| b.streams.cmp(&a.streams).then(a.topics.cmp(&b.topics)));
    Snapshot {
        streams,
        recent: state.recent.iter().cloned().collect(),
    }
}

/// The key a stream is recorded under.
pub(super) fn topics_of(filter: &Filter) -> Box<str> {
    match &filter.selectors {
        None => "*".into(),
        Some(selectors) => (selectors.iter())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
            .into(),
    }
}

/// A stream opened with `topics`; `true` when recorded (then [`stream_closed`] must follow).
pub(super) fn stream_opened(topics: &str) -> bool {
    if !enabled() {
        return false;
    }
    let mut state = state();
    *state
        .streams
        .get_or_insert_with(HashMap::new)
        .entry(topics.into())
        .or_default() += 1;
    true
}

/// A stream recorded by [`stream_opened`] ended.
pub(super) fn stream_closed(topics: &str) {
    let mut state = state();
    if let Some(n) = state.streams.as_mut().and_then(|m| m.get_mut(topics)) {
        *n = n.saturating_sub(1);
    }
}

pub(super) fn published(event: &str, route: &Route, id: Option<EventId>, bytes: usize) {
    if !enabled() {
        return;
    }
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let recent = RecentEvent {
        name: event.to_owned(),
        topics: route.topics.iter().map(|t| t.to_string()).collect(),
        private: route.private,
        id: id.map(|id| id.to_string()),
        bytes,
        at_ms,
    };
    let mut state = state();
    if state.recent.len() == RECENT {
        state.recent.pop_front();
    }
    state.recent.push_back(recent);
}
