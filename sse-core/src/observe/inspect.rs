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
//! The record is per process (every broadcaster in it), as is the inspector. It stays small
//! whatever clients send: a selection is forgotten when its last stream closes, and past
//! [`MAX_SELECTIONS`] distinct ones the rest are counted together ([`Snapshot::other`]).
//! Streams open and close under one of several locks, chosen by their selection, so that
//! they rarely wait for each other or for a snapshot.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::topic::{Filter, Route, TopicSelector};
use crate::wire::EventId;

/// How many of the last events are kept.
pub const RECENT: usize = 50;

/// Most distinct topic selections counted apart. A client picks its selection (up to a few
/// KiB of text), so the record is bounded: streams with a selection past these are counted
/// together, in [`Snapshot::other`].
pub const MAX_SELECTIONS: usize = 1024;

/// Parts the record of open streams is split in, each under its own lock.
const SHARDS: usize = 16;
const PER_SHARD: usize = MAX_SELECTIONS / SHARDS;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Open streams by selection; a selection's shard is picked by its hash.
static SELECTIONS: [Mutex<BTreeMap<Box<str>, usize>>; SHARDS] =
    [const { Mutex::new(BTreeMap::new()) }; SHARDS];
/// Open streams whose selection is not counted apart.
static OTHER: AtomicUsize = AtomicUsize::new(0);
static LAST_EVENTS: Mutex<VecDeque<RecentEvent>> = Mutex::new(VecDeque::new());
/// The [`watch`]ed selectors, each with how many open streams watch it.
static WATCHED: RwLock<Vec<(TopicSelector, Arc<AtomicUsize>)>> = RwLock::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic cannot leave the record inconsistent: each update is one step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Counts, from now on (once [`enable`]d), the streams that select exactly `selector` with
/// credentials covering it: the audience of a private topic an inspector page is fed
/// through, which [`watchers`] tells.
///
/// A stream that may not read `selector` is never counted, whatever its selection looks
/// like: a selector `x,debug/sse` is not `debug/sse`, and a stream without credentials for
/// it does not watch it.
pub fn watch(selector: TopicSelector) {
    let mut watched = WATCHED.write().unwrap_or_else(PoisonError::into_inner);
    if !watched.iter().any(|(w, _)| *w == selector) {
        watched.push((selector, Arc::default()));
    }
}

/// How many open streams [`watch`] counts for `selector`; 0 when it is not watched.
pub fn watchers(selector: &TopicSelector) -> usize {
    let watched = WATCHED.read().unwrap_or_else(PoisonError::into_inner);
    (watched.iter())
        .find(|(w, _)| w == selector)
        // Relaxed: a count to show, ordering nothing else.
        .map_or(0, |(_, n)| n.load(Ordering::Relaxed))
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
    /// Open streams with a selection not counted apart (past [`MAX_SELECTIONS`] distinct
    /// ones).
    pub other: usize,
    /// The last events, oldest first (at most [`RECENT`]).
    pub recent: Vec<RecentEvent>,
}

/// The streams and events recorded since [`enable`].
pub fn snapshot() -> Snapshot {
    let mut streams = Vec::new();
    // One shard at a time: streams opening elsewhere need not wait for the whole snapshot.
    for shard in &SELECTIONS {
        streams.extend(lock(shard).iter().map(|(topics, n)| TopicStreams {
            topics: topics.to_string(),
            streams: *n,
        }));
    }
    streams.sort_by(|a, b| b.streams.cmp(&a.streams).then(a.topics.cmp(&b.topics)));
    Snapshot {
        streams,
        other: OTHER.load(Ordering::Relaxed),
        recent: lock(&LAST_EVENTS).iter().cloned().collect(),
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

/// A stream's place in the record, given back when dropped.
pub(super) struct Recorded {
    /// Its shard and selection; `None` when counted under [`OTHER`].
    selection: Option<(usize, Box<str>)>,
    /// The counts of the watched selectors it watches.
    watching: Vec<Arc<AtomicUsize>>,
}

/// A stream opened with `filter`; recorded (until the result is dropped) when the inspector
/// is on.
pub(super) fn stream_opened(filter: &Filter) -> Option<Recorded> {
    if !enabled() {
        return None;
    }
    let key = topics_of(filter);
    let shard = shard_of(&key);
    let counted = {
        let mut streams = lock(&SELECTIONS[shard]);
        if let Some(n) = streams.get_mut(&key) {
            *n += 1;
            true
        } else if streams.len() < PER_SHARD {
            streams.insert(key.clone(), 1);
            true
        } else {
            false
        }
    };
    if !counted {
        // Relaxed, as every count here: shown, ordering nothing else.
        OTHER.fetch_add(1, Ordering::Relaxed);
    }
    Some(Recorded {
        selection: counted.then_some((shard, key)),
        watching: watching(filter),
    })
}

impl Drop for Recorded {
    fn drop(&mut self) {
        match &self.selection {
            Some((shard, key)) => {
                let mut streams = lock(&SELECTIONS[*shard]);
                if let Some(n) = streams.get_mut(key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        streams.remove(key);
                    }
                }
            }
            None => {
                OTHER.fetch_sub(1, Ordering::Relaxed);
            }
        }
        for n in &self.watching {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn shard_of(key: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    // The remainder is below SHARDS: it fits.
    (hasher.finish() % SHARDS as u64) as usize
}

/// The counts of the watched selectors `filter` selects, with credentials for them,
/// incremented.
fn watching(filter: &Filter) -> Vec<Arc<AtomicUsize>> {
    let Some(selectors) = &filter.selectors else {
        return Vec::new();
    };
    let watched = WATCHED.read().unwrap_or_else(PoisonError::into_inner);
    (watched.iter())
        .filter(|(w, _)| selectors.contains(w) && filter.grants.iter().any(|g| w.is_within(g)))
        .map(|(_, n)| {
            n.fetch_add(1, Ordering::Relaxed);
            n.clone()
        })
        .collect()
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
    let mut last = lock(&LAST_EVENTS);
    if last.len() == RECENT {
        last.pop_front();
    }
    last.push_back(recent);
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::TestRequest;
    use actix_web::HttpResponse;

    use super::*;
    use crate::Broadcaster;

    /// A stream opened through the endpoint with `topics` (each percent-encoded), open until
    /// the response is dropped.
    fn open(events: &Broadcaster, topics: &[&str]) -> HttpResponse {
        let query: Vec<String> = (topics.iter())
            .map(|t| {
                let encoded: String = t.bytes().map(|b| format!("%{b:02X}")).collect();
                format!("topic={encoded}")
            })
            .collect();
        let uri = format!("/events?{}", query.join("&"));
        let response = events.respond(&TestRequest::with_uri(&uri).to_http_request());
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        response
    }

    /// Selections the record holds (streams open or not) that start with `prefix`: other
    /// tests of this process record theirs too.
    fn held(prefix: &str) -> usize {
        (SELECTIONS.iter())
            .map(|shard| lock(shard).keys().filter(|k| k.starts_with(prefix)).count())
            .sum()
    }

    #[actix_rt::test]
    async fn a_selection_is_forgotten_when_its_last_stream_closes() {
        enable();
        let events = Broadcaster::builder().keep_alive(None).build();
        let a = open(&events, &["forgotten/a", "forgotten/b"]);
        let b = open(&events, &["forgotten/a", "forgotten/b"]);
        assert_eq!(held("forgotten/"), 1);
        drop(a);
        assert_eq!(held("forgotten/"), 1);
        drop(b);
        assert_eq!(held("forgotten/"), 0);
    }

    #[actix_rt::test]
    async fn distinct_selections_are_bounded() {
        enable();
        let events = Broadcaster::builder().keep_alive(None).build();
        let streams: Vec<HttpResponse> = (0..1500)
            .map(|i| open(&events, &[&format!("bounded/{i}")]))
            .collect();
        assert!(held("bounded/") <= MAX_SELECTIONS, "{}", held("bounded/"));
        // At most MAX_SELECTIONS are counted apart, whoever opened them.
        assert!(snapshot().other >= 1500 - MAX_SELECTIONS);
        drop(streams);
        assert_eq!(held("bounded/"), 0);
    }

    /// Grants `watched/inspector` to requests that ask for it in the query string.
    struct GrantOnAsk;

    impl crate::Authorize for GrantOnAsk {
        fn authorize(
            &self,
            req: &actix_web::HttpRequest,
        ) -> Result<Option<crate::Grant>, crate::error::AuthError> {
            let topic = TopicSelector::literal("watched/inspector").expect("a topic");
            Ok((req.query_string().contains("credentials")).then(|| crate::Grant::new([topic])))
        }
    }

    #[actix_rt::test]
    async fn only_streams_that_may_read_a_watched_selector_watch_it() {
        enable();
        let inspector = TopicSelector::literal("watched/inspector").unwrap();
        watch(inspector.clone());
        let events = Broadcaster::builder()
            .private_topics([inspector.clone()])
            .authorizer(GrantOnAsk)
            .keep_alive(None)
            .build();
        // Selectors that merely contain it, read anonymously: no watcher.
        let lookalike = open(&events, &["x,watched/inspector"]);
        let beside = open(&events, &["x", "watched/inspector,y"]);
        assert_eq!(watchers(&inspector), 0);
        let uri = "/events?topic=watched%2Finspector&credentials";
        let page = events.respond(&TestRequest::with_uri(uri).to_http_request());
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(watchers(&inspector), 1);
        drop(page);
        assert_eq!(watchers(&inspector), 0);
        drop((lookalike, beside));
    }
}
