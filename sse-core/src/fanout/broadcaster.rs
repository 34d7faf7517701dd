//! The fan-out: publish once, deliver the same bytes to every subscriber.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::builder::{BroadcasterBuilder, Config};
use super::event::{Data as EventData, Event};
use super::frame::Frame;
use super::hub::Hub;
use super::presence::PresenceChanges;
use super::stats::{Counters, Stats};
use super::stream::EventStream;
use crate::engine::{Append, EngineStats};
use crate::error::PublishError;
use crate::topic::{Delivery, Filter, Route};
use crate::wire::{encode, Data, EventId};

/// A cheap-to-clone handle to one event stream: publish events here, serve them to browsers with
/// [`Broadcaster::service`].
///
/// Each event is serialized once and encoded once into a complete SSE frame; every subscriber
/// gets a clone of the same `Bytes`. A bounded history lets reconnecting clients resume with
/// `Last-Event-ID` and lets slow clients catch up; publishing never waits for any subscriber.
///
/// Create it **once, outside** the `HttpServer::new` closure: actix calls that closure once per
/// worker thread, and a broadcaster made inside it would be one per worker, so subscribers on
/// one worker would never see events published on another.
///
/// ```
/// use sse_core::Broadcaster;
/// use std::time::Duration;
///
/// let events = Broadcaster::builder()
///     .history(1024)
///     .keep_alive(Duration::from_secs(5))
///     .build();
/// let id = events.publish("user_updated", &serde_json::json!({"id": 1})).unwrap();
/// assert_eq!(id.seq(), 1);
/// assert_eq!(events.stats().published, 1);
/// ```
#[derive(Clone)]
pub struct Broadcaster {
    pub(crate) shared: Arc<Hub>,
}

impl Default for Broadcaster {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("last_event_id", &self.last_event_id())
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Broadcaster {
    /// A broadcaster with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts configuring a broadcaster.
    pub fn builder() -> BroadcasterBuilder {
        BroadcasterBuilder::default()
    }

    /// The broadcaster `config` describes, with a new epoch for its ids.
    pub(crate) fn from_config(config: Config) -> Self {
        Broadcaster {
            shared: Hub::start(config),
        }
    }

    /// Publishes `payload`, serialized to JSON once, as the named event `event` to every
    /// subscriber, and returns its id.
    ///
    /// Never waits for subscribers. Fails only if the name cannot go on the wire, the payload
    /// cannot be serialized, or the broadcaster was shut down.
    ///
    /// With the Redis backend (`BroadcasterBuilder::redis`) it never waits for Redis either:
    /// the event is queued for it, and Redis assigns its id later; the id returned is then
    /// the last one this instance had read, which the event will follow.
    ///
    /// Its topic is the event name; build an [`Event`] to choose topics, privacy or plain
    /// text, and publish it with [`Broadcaster::publish_event`].
    ///
    /// # Errors
    ///
    /// [`PublishError::InvalidEventName`] when the name cannot go on the wire,
    /// [`PublishError::Serialize`] when the payload does not serialize to JSON,
    /// [`PublishError::Closed`] once the broadcaster is shut down; nothing is published then.
    ///
    /// ```
    /// let events = sse_core::Broadcaster::new();
    /// let id = events.publish("user_updated", &serde_json::json!({ "id": 42 }))?;
    /// assert_eq!(events.last_event_id(), id);
    /// # Ok::<(), sse_core::error::PublishError>(())
    /// ```
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<EventId, PublishError> {
        encode::validate_event_name(event)?;
        let route = Delivery::to([event]).route()?;
        let json = serde_json::to_string(payload).map_err(|source| PublishError::Serialize {
            event: event.to_owned(),
            source,
        })?;
        self.publish_data(event, Data::Json(&json), route)
    }

    /// Publishes an [`Event`] of the application's making: its topics, privacy, and JSON or
    /// text data, encoded once for every subscriber. Returns its id, as
    /// [`publish`](Broadcaster::publish) does.
    ///
    /// # Errors
    ///
    /// As [`publish`](Broadcaster::publish), and [`PublishError::InvalidTopic`] for a topic
    /// that cannot be one (empty, too long, control characters).
    ///
    /// ```
    /// use sse_core::{Broadcaster, Event};
    ///
    /// let events = Broadcaster::new();
    /// events.publish_event(Event::new("user_updated").json(&42).topic("users/42"))?;
    /// # Ok::<(), sse_core::error::PublishError>(())
    /// ```
    pub fn publish_event(&self, event: Event) -> Result<EventId, PublishError> {
        let (name, data, route) = event.into_parts()?;
        let data = match &data {
            EventData::Json(json) => Data::Json(json),
            EventData::Text(text) => Data::Text(text),
        };
        self.publish_data(&name, data, route)
    }

    /// Publishes an already serialized JSON document (name and route are checked by the
    /// caller).
    pub(crate) fn publish_json(
        &self,
        event: &str,
        json: &str,
        route: Arc<Route>,
    ) -> Result<EventId, PublishError> {
        self.publish_data(event, Data::Json(json), route)
    }

    /// Publishes text whose id on the wire is `wire_id`, chosen by its publisher (a Mercure
    /// update), with an optional `retry:` field; it is numbered like any other event, and
    /// a client that sends `wire_id` back as its `Last-Event-ID` resumes after it while it is
    /// in the local history. The caller checked the name, route and id.
    ///
    /// With an engine, the id and `retry` travel with the entry, so every instance's frame
    /// carries them.
    #[cfg_attr(not(feature = "mercure"), allow(dead_code))]
    pub(crate) fn publish_with_wire_id(
        &self,
        wire_id: Arc<str>,
        event: &str,
        text: &str,
        retry: Option<u64>,
        route: Arc<Route>,
    ) -> Result<EventId, PublishError> {
        let shared = &self.shared;
        if let Some(log) = shared.log() {
            if shared.is_closed() {
                return Err(PublishError::Closed);
            }
            shared.counters.published(event, &route, None, text.len());
            log.append(Append {
                name: event.to_owned(),
                data: text.to_owned(),
                json: false,
                route,
                wire_id: Some(wire_id.to_string()),
                retry,
            });
            return Ok(self.last_event_id());
        }
        if shared.is_closed() {
            return Err(PublishError::Closed);
        }
        let mut state = shared.lock();
        let id = EventId::new(state.epoch, state.last_seq + 1);
        let frame = Frame::with_wire_id(id, wire_id, event, Data::Text(text), retry, route);
        shared
            .counters
            .published(event, &frame.route, Some(id), frame.bytes.len());
        state.push(frame, &shared.config);
        drop(state);
        Ok(id)
    }

    fn publish_data(
        &self,
        event: &str,
        data: Data<'_>,
        route: Arc<Route>,
    ) -> Result<EventId, PublishError> {
        let shared = &self.shared;
        if let Some(log) = shared.log() {
            if shared.is_closed() {
                return Err(PublishError::Closed);
            }
            // Never waits for the log: the id is assigned when the entry is appended, and the
            // frame is encoded when this instance reads it back.
            let (data, json) = match data {
                Data::Json(s) => (s, true),
                Data::Text(s) => (s, false),
            };
            shared.counters.published(event, &route, None, data.len());
            log.append(Append {
                name: event.to_owned(),
                data: data.to_owned(),
                json,
                route,
                wire_id: None,
                retry: None,
            });
            return Ok(self.last_event_id());
        }
        // Streams may have ended already (a shutdown draining its requests): the event is
        // still numbered and kept, only `shutdown` refuses it.
        if shared.is_closed() {
            return Err(PublishError::Closed);
        }
        let mut state = shared.lock();
        let id = EventId::new(state.epoch, state.last_seq + 1);
        // Encoded once, under the lock so that ids, history order and delivery order agree.
        let frame = Frame::event(id, event, data, route, shared.config.format);
        // Counted under the lock, before the push: a subscriber that sees the event sees
        // the count.
        shared
            .counters
            .published(event, &frame.route, Some(id), frame.bytes.len());
        state.push(frame, &shared.config);
        drop(state);
        Ok(id)
    }

    /// The id of the last published event, or the starting point if none was published yet.
    ///
    /// With the Redis backend: the last entry this instance has read from the stream.
    pub fn last_event_id(&self) -> EventId {
        self.shared.lock().last_id
    }

    /// Ends every open stream now and refuses further events and subscribers.
    ///
    /// [`Broadcaster::serve`] and [`Broadcaster::stop_server`] call it once the server has
    /// stopped, so that the requests still in flight publish their events; call it yourself
    /// only when you run the server otherwise, once it has drained.
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Closing the channel and the mailboxes wakes every subscriber, which then sees
        // `closed`.
        self.shared.lock().close();
        self.shared.presence_changed();
        if let Some(log) = self.shared.log() {
            log.stop(self.shared.config.flush_timeout);
        }
        tracing::debug!("sse broadcaster shut down");
    }

    /// Ends every open stream and refuses new ones, but still accepts events: the first step
    /// of a shutdown, so that actix's graceful stop (which waits for every connection) is not
    /// held up by streams that never end by themselves, while the requests still in flight
    /// publish their events to the engine.
    pub(crate) fn end_streams(&self) {
        self.shared.lock().close();
        self.shared.presence_changed();
        tracing::debug!("sse streams ended; events are still accepted until shutdown");
    }

    /// After [`Broadcaster::shutdown`], resolves once the events published before it were
    /// handed to the event log engine, or abandoned after the
    /// [flush timeout](BroadcasterBuilder::flush_timeout) (logged and counted in
    /// [`EngineStats::outbox_dropped`]); at once without an engine. [`Broadcaster::serve`]
    /// and [`Broadcaster::stop_server`] wait for it.
    pub async fn flushed(&self) {
        if let Some(log) = self.shared.log() {
            log.stopped().await;
        }
    }

    /// Opens a stream of encoded frames that resumes after `last_event_id` (the events
    /// after it, or a reset when they are gone), or starts with the next event; `None` once
    /// the broadcaster is shut down. [`Broadcaster::respond`] wraps it in a response, reading
    /// the `Last-Event-ID` of the request.
    ///
    /// ```
    /// # #[actix_rt::main] async fn main() {
    /// use futures_util::StreamExt;
    /// use sse_core::{Broadcaster, EventId};
    ///
    /// let events = Broadcaster::new();
    /// let first = events.publish("tick", &1).unwrap();
    /// events.publish("tick", &2).unwrap();
    /// let mut stream = events.subscribe(Some(first)).unwrap();
    /// let mut text = String::new();
    /// while !text.contains("data: 2") {
    ///     text.push_str(&String::from_utf8_lossy(&stream.next().await.unwrap().unwrap()));
    /// }
    /// # }
    /// ```
    pub fn subscribe(&self, last_event_id: Option<EventId>) -> Option<EventStream> {
        EventStream::open(
            self.shared.clone(),
            last_event_id.into(),
            Filter::default(),
            crate::wire::gzip::Coding::Identity,
            None,
            None,
        )
    }

    /// Whether [`Broadcaster::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_closed()
    }
}

impl Broadcaster {
    /// The SQL event log the broadcaster was built on, if any.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn event_log(&self) -> Option<&crate::engine::sql::EventLog> {
        self.shared.config.event_log.as_ref()
    }

    /// Where `emit` reports what happened to a handler's events.
    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let engine = self
            .shared
            .log()
            .map_or_else(EngineStats::default, |log| log.stats());
        let mut stats = self.shared.counters.snapshot(engine);
        (stats.topic_subscribers, stats.followed_topics) = self.shared.lock().index.counts();
        stats
    }

    /// How many open streams follow `topic`: those with a selector that matches it (a
    /// subscriber that chose no topic, and gets every public event, is not counted). Read
    /// from the subscription index, without looking at each subscriber.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let events = sse_core::Broadcaster::new();
    /// assert_eq!(events.presence("users/42"), 0);
    /// # }
    /// ```
    pub fn presence(&self, topic: &str) -> usize {
        self.shared.lock().index.presence(topic)
    }

    /// Wakes when a stream with topics opens or ends (and at shutdown): read
    /// [`presence`](Broadcaster::presence) then, rather than on a timer. See
    /// [`PresenceChanges`].
    pub fn presence_changes(&self) -> PresenceChanges {
        PresenceChanges::new(self.shared.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames a new subscriber gets now, as text.
    fn frames(b: &Broadcaster, last_event_id: Option<&str>) -> Vec<String> {
        use futures_util::StreamExt;
        let mut stream = EventStream::open(
            b.shared.clone(),
            crate::wire::LastEventId::parse(last_event_id),
            Filter::default(),
            crate::wire::gzip::Coding::Identity,
            None,
            None,
        )
        .unwrap();
        let mut text = String::new();
        while let Some(Some(Ok(chunk))) = futures_util::FutureExt::now_or_never(stream.next()) {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text.split_inclusive("\n\n").map(str::to_owned).collect()
    }

    #[test]
    fn ids_increase_and_carry_the_epoch() {
        let b = Broadcaster::new();
        let a = b.publish("a", &1).unwrap();
        let c = b.publish("a", &2).unwrap();
        assert_eq!((a.seq(), c.seq()), (1, 2));
        assert_eq!(a.epoch(), b.last_event_id().epoch());
        assert_ne!(Broadcaster::new().last_event_id().epoch(), a.epoch());
    }

    #[test]
    fn history_is_bounded_by_count_and_bytes() {
        let b = Broadcaster::builder().history(3).build();
        for i in 0..10 {
            b.publish("e", &i).unwrap();
        }
        let s = b.shared.lock();
        assert_eq!(
            s.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            [8, 9, 10]
        );
        drop(s);

        let b = Broadcaster::builder()
            .history(100)
            .history_bytes(100)
            .build();
        for i in 0..10 {
            b.publish("e", &i).unwrap();
        }
        let s = b.shared.lock();
        assert!(s.bytes <= 100 && s.frames.len() < 10, "{}", s.frames.len());
        assert_eq!(s.frames.back().map(|f| f.seq), Some(10));
    }

    #[tokio::test]
    async fn resume_replays_exactly_the_missed_events() {
        let b = Broadcaster::new();
        let ids: Vec<_> = (0..5).map(|i| b.publish("e", &i).unwrap()).collect();
        let f = frames(&b, Some(&ids[1].to_string()));
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f[1].starts_with(&format!("id: {}\n", ids[2])));
        assert!(f[3].starts_with(&format!("id: {}\n", ids[4])));
        assert_eq!(b.stats().resumed, 1);
    }

    #[tokio::test]
    async fn resume_at_the_head_replays_nothing() {
        let b = Broadcaster::new();
        let id = b.publish("e", &0).unwrap();
        assert_eq!(
            frames(&b, Some(&id.to_string())),
            [format!(": connected\nid: {id}\n\n")]
        );
    }

    #[tokio::test]
    async fn bad_ids_get_a_reset() {
        let b = Broadcaster::builder().history(2).build();
        for i in 0..5 {
            b.publish("e", &i).unwrap();
        }
        let other_epoch = Broadcaster::new().last_event_id().to_string();
        let epoch = b.last_event_id().epoch();
        let too_old = EventId::new(epoch, 1).to_string();
        let future = EventId::new(epoch, 99).to_string();
        let cases = [
            ("garbage", "malformed_id"),
            (&other_epoch, "stale"),
            (&too_old, "too_old"),
            (&future, "ahead"),
        ];
        for (bad, code) in cases {
            let f = frames(&b, Some(bad));
            assert_eq!(f.len(), 2, "{bad:?}: {f:?}");
            assert!(f[1].contains("event: sse-reset\n"), "{bad:?}: {f:?}");
            assert!(
                f[1].contains(&format!(r#""code":"{code}""#)),
                "{bad:?}: {f:?}"
            );
            assert!(f[1].starts_with(&format!("id: {}\n", b.last_event_id())));
        }
        assert_eq!(b.stats().resets, 4);
        // A blank id is no id: the stream starts with the next event.
        assert_eq!(frames(&b, Some("  ")).len(), 1);
    }

    #[tokio::test]
    async fn shutdown_refuses_publish_and_subscribe() {
        let b = Broadcaster::new();
        b.shutdown();
        assert!(matches!(b.publish("e", &1), Err(PublishError::Closed)));
        assert!(b.subscribe(None).is_none());
    }

    #[test]
    fn invalid_payloads_and_names_are_errors() {
        let b = Broadcaster::new();
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        assert!(matches!(
            b.publish("e", &map),
            Err(PublishError::Serialize { .. })
        ));
        assert!(matches!(
            b.publish("a\nb", &1),
            Err(PublishError::InvalidEventName { .. })
        ));
        assert_eq!(b.stats().published, 0);
    }
}
