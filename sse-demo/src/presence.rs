//! Presence: how many pages are watching each user, published as the `user_watchers` event.
//!
//! A page that watches a user adds the exact topic `watch/users/{id}` to its stream (counting
//! `users/{id}` would not do: every page follows `users/*`, which matches every user). The
//! [`Presence::middleware`] notes the ids named by stream requests that opened a stream; when
//! a stream with topics opens or ends ([`Broadcaster::presence_changes`]) or an id is noted, a
//! task reads [`Broadcaster::presence`] for those ids and publishes `{"id", "watchers"}` on
//! `users/{id}` when a count changed. Nothing runs on a timer. An id back at 0 is forgotten
//! once that 0 is published, so a count costs one index lookup per user being watched, at
//! most [`MAX_WATCHED`].
//!
//! The counts belong to that task alone: a stream request only adds its ids to a small inbox,
//! and `GET /api/v1/watchers` only copies a pointer to the list last published, so no request
//! ever waits for a count (up to 4096 lookups) to finish.
//!
//! `GET /api/v1/watchers` lists the counts last published, for a page's snapshot (stamped with
//! `SSE-Last-Event-ID` like the users list; the events after it bring the page up to date).
//!
//! What is counted is streams: tabs of one browser with the same topics share one stream
//! (sse-core's client), so they count once; any stream whose selector matches the topic (such
//! as `*`) counts too. With several instances (`--redis`, `--nats`) each instance counts and
//! publishes its own streams only.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::web::{self, Json};
use serde::{Deserialize, Serialize};
use sse_core::{Broadcaster, Event};
use tokio::sync::Notify;

/// The topics a watching page adds to its stream.
pub const WATCH_TOPICS: &str = "watch/users/{id}";

/// `WATCH_TOPICS` up to the id.
const WATCH_PREFIX: &str = "watch/users/";

/// The event name of a count.
pub const WATCHERS_EVENT: &str = "user_watchers";

/// How long a change waits for others before the counts are read.
pub const SETTLE: Duration = Duration::from_millis(50);

/// The most users counted at once; a stream watching another one is served but not counted.
pub const MAX_WATCHED: usize = 4096;

/// The payload of the `user_watchers` event, and an item of `GET /api/v1/watchers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserWatchers {
    /// The user watched.
    pub id: i64,
    /// How many streams follow `watch/users/{id}` now.
    pub watchers: usize,
}

sse_core::declare_event!(
    "user_watchers",
    payload = UserWatchers,
    topic = "users/{id}"
);

/// The watched users and their counts; one per process, shared by every worker.
#[derive(Clone, Default)]
pub struct Presence {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Users named by streams that opened since the counting task last looked: the only
    /// thing a stream request writes, under a lock held for a few insertions.
    noted: Mutex<BTreeSet<i64>>,
    /// Wakes the counting task for a newly noted user.
    wake: Notify,
    /// The counts last published that are not 0, by id: replaced whole after each count.
    counts: Mutex<Arc<[UserWatchers]>>,
}

/// The counting task's own state: the count last published for each user being watched; 0
/// for one noted but not yet counted (what a page assumes of a user it has no count for).
#[derive(Default)]
struct Counter {
    published: BTreeMap<i64, usize>,
}

impl Presence {
    /// Starts counting for `events`, until it shuts down: a task on the current actix
    /// runtime counts whenever a stream with topics opens or ends, or a watch is noted.
    pub fn start(events: &Broadcaster) -> Self {
        let presence = Self::default();
        let (this, events) = (presence.clone(), events.clone());
        let mut changes = events.presence_changes();
        actix_web::rt::spawn(async move {
            let mut counter = Counter::default();
            loop {
                tokio::select! {
                    more = changes.changed() => if !more { break },
                    () = this.shared.wake.notified() => {}
                }
                // Lets a burst of opens (a page load, a reconnect storm) settle into one count.
                tokio::time::sleep(SETTLE).await;
                counter.tick(&this, &events);
            }
        });
        presence
    }

    /// Registers `GET /api/v1/watchers`, for `App::configure`.
    pub fn config(&self) -> impl FnOnce(&mut web::ServiceConfig) {
        let this = self.clone();
        move |cfg| {
            cfg.app_data(web::Data::new(this))
                .route("/api/v1/watchers", web::get().to(list));
        }
    }

    /// The middleware that notes which users the event streams opened watch, for `App::wrap`.
    pub fn middleware<S, B>(
        &self,
    ) -> impl Transform<
        S,
        ServiceRequest,
        Response = ServiceResponse<B>,
        Error = actix_web::Error,
        InitError = (),
    > + 'static
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>
            + 'static,
        B: MessageBody + 'static,
    {
        type Answer<B> =
            Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;
        let this = self.clone();
        from_fn(move |req: ServiceRequest, next: Next<B>| -> Answer<B> {
            let this = this.clone();
            Box::pin(async move {
                let res = next.call(req).await?;
                // After the response: a stream that opened is already in the index, so the
                // next tick counts it; a refused one is not noted at all.
                let req = res.request();
                if res.status() == StatusCode::OK && req.path() == crate::STREAM_PATH {
                    this.note(req.query_string());
                }
                Ok(res)
            })
        })
    }

    /// Notes the users a stream request's `topic` parameters watch, for the next count.
    fn note(&self, query: &str) {
        let Ok(params) = web::Query::<Vec<(String, String)>>::from_query(query) else {
            return;
        };
        let ids = (params.iter())
            .filter(|(name, _)| name == "topic")
            .filter_map(|(_, topic)| watched_id(topic));
        let mut noted = lock(&self.shared.noted);
        for id in ids {
            if noted.len() < MAX_WATCHED || noted.contains(&id) {
                noted.insert(id);
                // The stream may have been counted before it was noted: count it again.
                self.shared.wake.notify_one();
            } else {
                tracing::debug!(
                    id,
                    "presence: too many users noted at once; this one is not counted"
                );
            }
        }
    }

    /// The counts last published that are not 0, by user id.
    pub fn counts(&self) -> Vec<UserWatchers> {
        let counts = Arc::clone(&lock(&self.shared.counts));
        counts.to_vec()
    }
}

impl Counter {
    /// Counts each watched user, publishes the counts that changed, and shares the new list.
    fn tick(&mut self, presence: &Presence, events: &Broadcaster) {
        let changed = self.count(presence, |topic| events.presence(topic));
        for count in changed {
            let topic = format!("users/{}", count.id);
            let update = Event::new(WATCHERS_EVENT).json(&count).topic(topic);
            if let Err(err) = events.publish_event(update) {
                tracing::debug!(%err, id = count.id, "presence: count not published");
            }
        }
    }

    /// Takes the users noted since the last count, counts every watched user with `watchers`
    /// (the streams following a topic), and returns the counts that changed. No lock is held
    /// while counting: a stream noted meanwhile waits in the inbox, and the wake-up it left
    /// brings the next count.
    fn count(
        &mut self,
        presence: &Presence,
        mut watchers: impl FnMut(&str) -> usize,
    ) -> Vec<UserWatchers> {
        let noted = std::mem::take(&mut *lock(&presence.shared.noted));
        for id in noted {
            if self.published.len() < MAX_WATCHED || self.published.contains_key(&id) {
                self.published.entry(id).or_insert(0);
            } else {
                tracing::debug!(
                    id,
                    "presence: too many users watched; this one is not counted"
                );
            }
        }
        let mut changed = Vec::new();
        self.published.retain(|&id, last| {
            let now = watchers(&format!("{WATCH_PREFIX}{id}"));
            if now != *last {
                *last = now;
                changed.push(UserWatchers { id, watchers: now });
            }
            now > 0
        });
        let counts = (self.published.iter())
            .filter(|(_, &watchers)| watchers > 0)
            .map(|(&id, &watchers)| UserWatchers { id, watchers })
            .collect();
        *lock(&presence.shared.counts) = counts;
        changed
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is one step: the value is consistent after a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The user id of a `watch/users/{id}` topic.
fn watched_id(topic: &str) -> Option<i64> {
    let id = topic.strip_prefix(WATCH_PREFIX)?;
    // Digits only: `+1` or `01` would name the same user under another topic.
    let canonical =
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0');
    canonical.then(|| id.parse().ok()).flatten()
}

/// `GET /api/v1/watchers`: `[{"id", "watchers"}]` for the users watched now, by id.
async fn list(presence: web::Data<Presence>) -> Json<Vec<UserWatchers>> {
    Json(presence.counts())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_topics_name_one_user_each() {
        assert_eq!(watched_id("watch/users/42"), Some(42));
        for other in [
            "users/42",
            "watch/users/",
            "watch/users/042",
            "watch/users/+42",
            "watch/users/42/x",
            "watch/users/*",
            "watch/users/{id}",
            "watch/users/99999999999999999999",
        ] {
            assert_eq!(watched_id(other), None, "{other}");
        }
    }

    /// Every frame `stream` has ready within a moment, as text.
    async fn ready_text(stream: &mut sse_core::EventStream) -> String {
        use futures_util::StreamExt;
        let mut text = String::new();
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_millis(100), stream.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&frame));
        }
        text
    }

    #[tokio::test]
    async fn a_tick_publishes_the_counts_that_changed_and_forgets_users_back_at_zero() {
        let events = Broadcaster::builder().keep_alive(None).build();
        let presence = Presence::default();
        let mut everything = events.subscribe(None).expect("subscribe");
        let open = |query: &str| {
            let uri = format!("{}?{query}", crate::STREAM_PATH);
            events.respond(
                &actix_web::test::TestRequest::get()
                    .uri(&uri)
                    .to_http_request(),
            )
        };
        let query = "topic=users%2F*&topic=watch%2Fusers%2F7";
        let watcher = open(query);
        assert_eq!(watcher.status(), StatusCode::OK);
        presence.note(&format!("{query}&topic=watch/users/8"));
        assert_eq!(presence.counts(), [], "noted, not counted yet");

        let mut counter = Counter::default();
        counter.tick(&presence, &events);
        assert_eq!(presence.counts(), [UserWatchers { id: 7, watchers: 1 }]);
        assert_eq!(counter.published.len(), 1, "nobody watches 8: forgotten");
        let text = ready_text(&mut everything).await;
        assert!(
            text.contains("event: user_watchers\ndata: {\"id\":7,\"watchers\":1}"),
            "{text:?}"
        );

        let id = events.last_event_id();
        counter.tick(&presence, &events);
        assert_eq!(events.last_event_id(), id, "no change, nothing published");

        drop(watcher);
        counter.tick(&presence, &events);
        assert_eq!(presence.counts(), []);
        assert!(
            counter.published.is_empty(),
            "back at 0 and published: forgotten"
        );
        let text = ready_text(&mut everything).await;
        assert!(text.contains("{\"id\":7,\"watchers\":0}"), "{text:?}");
    }

    /// A count reads presence for every watched user (up to 4096): a stream request that
    /// opens meanwhile must not wait for it, in the middleware, on an async worker.
    #[test]
    fn noting_a_stream_never_waits_for_a_count_under_way() {
        let presence = Presence::default();
        presence.note("topic=watch/users/1");
        let mut counter = Counter::default();
        let mut noted_during_count = None;
        counter.count(&presence, |_| {
            if noted_during_count.is_none() {
                let (done, finished) = std::sync::mpsc::channel();
                let other = presence.clone();
                std::thread::spawn(move || {
                    other.note("topic=watch/users/2");
                    let _ = done.send(());
                });
                noted_during_count = Some(finished.recv_timeout(Duration::from_secs(2)).is_ok());
            }
            1
        });
        assert_eq!(
            noted_during_count,
            Some(true),
            "the request waited for the count"
        );
        // What was noted meanwhile is counted by the next count.
        counter.count(&presence, |_| 1);
        assert_eq!(
            presence.counts(),
            [
                UserWatchers { id: 1, watchers: 1 },
                UserWatchers { id: 2, watchers: 1 }
            ]
        );
    }
}
