//! The fan-out: publish once, deliver the same bytes to every subscriber.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::encode::{self, Data, WireFormat};
use crate::filter::{Filter, Route};
use crate::{Authorize, Delivery, EventId, PublishError, TopicSelector};

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
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    state: Mutex<State>,
    closed: AtomicBool,
    pub(crate) counters: Counters,
    /// Open endpoint streams, in total and per peer address, for the limits.
    admitted: Mutex<Admitted>,
    /// The Redis Streams backend, when the builder chose it.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<Arc<crate::redis::RedisBackend>>,
}

#[derive(Default)]
struct Admitted {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) history: usize,
    pub(crate) history_bytes: usize,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) retry: Option<Duration>,
    pub(crate) format: WireFormat,
    pub(crate) authorizer: Authorizer,
    pub(crate) private_topics: Vec<TopicSelector>,
    pub(crate) max_subscribers: usize,
    pub(crate) max_subscribers_per_ip: usize,
    pub(crate) max_selectors: usize,
    pub(crate) max_query_len: usize,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::redis::RedisConfig>,
    #[cfg(feature = "redis")]
    pub(crate) outbox: usize,
}

/// The optional [`Authorize`] implementation; `Debug` without requiring it of users.
#[derive(Clone, Default)]
pub(crate) struct Authorizer(pub(crate) Option<Arc<dyn Authorize>>);

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

struct State {
    /// The epoch of the ids: the broadcaster's, or the Redis stream's once connected.
    epoch: u64,
    /// Local sequence number of the last published event (0 before the first); with the
    /// Redis backend, of the last entry read from the stream.
    last_seq: u64,
    /// The id of that event (on the wire), or the starting point.
    last_id: EventId,
    history: VecDeque<Frame>,
    history_bytes: usize,
    /// `None` once shut down: dropping the sender wakes every subscriber.
    tx: Option<broadcast::Sender<Frame>>,
}

impl State {
    /// The history's frames after sequence number `after`. Sequence numbers in the history
    /// are consecutive, so this is an index, not a scan.
    fn frames_after(&self, after: u64) -> impl Iterator<Item = &Frame> + '_ {
        let skip = self.history.front().map_or(0, |f| {
            usize::try_from((after + 1).saturating_sub(f.seq)).unwrap_or(usize::MAX)
        });
        self.history.range(skip.min(self.history.len())..)
    }
}

/// One encoded event, shared by all subscribers.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// Local position, consecutive in the history (whatever the id looks like).
    pub(crate) seq: u64,
    pub(crate) id: EventId,
    pub(crate) bytes: Bytes,
    pub(crate) route: Arc<Route>,
}

impl Frame {
    /// A frame not yet placed in the history (its `seq` is set then).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(id: EventId, bytes: Bytes, route: Arc<Route>) -> Self {
        Self {
            seq: 0,
            id,
            bytes,
            route,
        }
    }
}

impl State {
    /// Appends `frame` as the next event: history (trimmed), then every live subscriber.
    fn push(&mut self, mut frame: Frame, config: &Config) {
        frame.seq = self.last_seq + 1;
        self.last_seq = frame.seq;
        self.last_id = frame.id;
        if config.history > 0 {
            self.history_bytes += frame.bytes.len();
            self.history.push_back(frame.clone());
            while self.history.len() > config.history
                || (self.history_bytes > config.history_bytes && self.history.len() > 1)
            {
                if let Some(old) = self.history.pop_front() {
                    self.history_bytes -= old.bytes.len();
                }
            }
        }
        if let Some(tx) = &self.tx {
            // An error only means nobody is subscribed right now.
            let _ = tx.send(frame);
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) subscribers: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) resumed: AtomicU64,
    pub(crate) caught_up: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) emit_failures: AtomicU64,
    pub(crate) topic_failures: AtomicU64,
    pub(crate) bad_requests: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) forbidden: AtomicU64,
    pub(crate) over_limit: AtomicU64,
    pub(crate) expired: AtomicU64,
}

/// With the Redis backend (`BroadcasterBuilder::redis`, feature `redis`), how the link to
/// Redis fares; all zero with the in-memory backend. Part of [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Events published here and not yet acknowledged by Redis.
    pub outbox: usize,
    /// Events dropped from a full outbox during an outage (subscribers then get a reset), or
    /// still queued when the broadcaster stopped with Redis unreachable.
    pub outbox_dropped: u64,
    /// Times the publisher connected again after losing Redis.
    pub reconnects: u64,
    /// Failed Redis commands and connection attempts, timeouts, malformed stream entries.
    pub errors: u64,
    /// Times the stream's epoch changed: Redis restarted empty or was flushed.
    pub epoch_changes: u64,
    /// Microseconds from `publish` to Redis acknowledging the event, for the last batch and
    /// the slowest so far (outages included).
    pub publish_latency_last_us: u64,
    /// See `publish_latency_last_us`.
    pub publish_latency_max_us: u64,
}

/// A snapshot of a broadcaster's counters, from [`Broadcaster::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Streams open now.
    pub subscribers: usize,
    /// Events published since the broadcaster was built.
    pub published: u64,
    /// Streams that resumed from a `Last-Event-ID` found in the history.
    pub resumed: u64,
    /// Times a subscriber fell behind and was caught up from the history.
    pub caught_up: u64,
    /// Reset events sent: unknown, malformed or too old `Last-Event-ID`, or a subscriber that
    /// fell behind further than the history reaches.
    pub resets: u64,
    /// Streams that ended because the client went away or the server shut down.
    pub disconnects: u64,
    /// Events that `#[emit_event]` could not publish (payload not serializable, no broadcaster
    /// registered, broadcaster shut down, topic template not fillable). The handler's
    /// response was sent regardless.
    pub emit_failures: u64,
    /// Of `emit_failures`: events whose topic template names a field the payload lacks, or
    /// whose value cannot be part of a topic.
    pub topic_failures: u64,
    /// Stream requests refused with 400 or 414: malformed or too many topic selectors, a bad
    /// client id, an over-long or unreadable query string.
    pub bad_requests: u64,
    /// Stream requests refused with 401: invalid or expired credentials, or none where a
    /// private topic was asked for.
    pub unauthorized: u64,
    /// Stream requests refused with 403: a private topic the credentials do not cover.
    pub forbidden: u64,
    /// Stream requests refused with 503 because of the subscriber limits.
    pub over_limit: u64,
    /// Streams ended because their credentials expired.
    pub expired: u64,
    /// The Redis backend's outbox and connection.
    pub store: StoreStats,
}

/// Configures a [`Broadcaster`]; from [`Broadcaster::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct BroadcasterBuilder {
    config: Config,
}

impl Default for BroadcasterBuilder {
    fn default() -> Self {
        Self {
            config: Config {
                history: 65536,
                history_bytes: 16 * 1024 * 1024,
                keep_alive: Some(Duration::from_secs(5)),
                retry: None,
                format: WireFormat::Named,
                authorizer: Authorizer::default(),
                private_topics: Vec::new(),
                max_subscribers: usize::MAX,
                max_subscribers_per_ip: usize::MAX,
                max_selectors: 32,
                max_query_len: 4096,
                #[cfg(feature = "redis")]
                redis: None,
                #[cfg(feature = "redis")]
                outbox: 10_000,
            },
        }
    }
}

impl BroadcasterBuilder {
    /// How many recent events are kept for `Last-Event-ID` replay and for catching up slow
    /// subscribers. Default 65 536; 0 disables replay. Frames are shared with the
    /// subscribers, so [`history_bytes`](Self::history_bytes) is the bound that matters for
    /// memory; a large count lets a burst of small events be caught up instead of reset.
    pub fn history(mut self, events: usize) -> Self {
        self.config.history = events;
        self
    }

    /// An upper bound on the bytes of encoded frames kept in the history, whatever the event
    /// count. Default 16 MiB. Frames are shared with the subscribers, so this bounds the
    /// server's memory for events however many clients are stalled.
    pub fn history_bytes(mut self, bytes: usize) -> Self {
        self.config.history_bytes = bytes;
        self
    }

    /// Sends a comment after this long without any other write, so proxies keep an idle stream
    /// open and a vanished client is noticed. Default 5 s; `None` disables it.
    pub fn keep_alive(mut self, every: impl Into<Option<Duration>>) -> Self {
        self.config.keep_alive = every.into();
        self
    }

    /// Sends `retry: <ms>` when a stream opens: how long the browser waits before reconnecting.
    /// Default: not sent (browsers then wait about 3 s).
    pub fn retry(mut self, after: impl Into<Option<Duration>>) -> Self {
        self.config.retry = after.into();
        self
    }

    /// Shares one event stream among several server instances through the Redis stream
    /// `stream` at `url` (feature `redis`). Events published on any instance reach the
    /// subscribers of all, with the same ids (`<epoch>-<ms>-<n>`: the stream's epoch and the
    /// Redis entry id); a client resumes with its `Last-Event-ID` on any instance.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), sse_core::InvalidRedisUrl> {
    /// let events = sse_core::Broadcaster::builder()
    ///     .redis("redis://127.0.0.1:6379", "myapp:events")?
    ///     .build();
    /// # Ok(()) }
    /// ```
    ///
    /// `publish` never waits for Redis: events go to a bounded [outbox](Self::outbox) that
    /// a background task publishes in order (`XADD`, trimmed to about `history` entries),
    /// reconnecting with backoff while Redis is down. Each instance reads the stream with
    /// `XREAD` into its local history; a `Last-Event-ID` older than that is answered from
    /// `XRANGE`. Ids from before Redis was restarted empty get a reset. See
    /// [`Stats::store`].
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: &str, stream: &str) -> Result<Self, crate::InvalidRedisUrl> {
        self.config.redis = Some(crate::redis::RedisConfig::new(url, stream)?);
        Ok(self)
    }

    /// With [`redis`](Self::redis): how many events wait for Redis during an outage before
    /// the oldest are dropped (counted, logged, and answered with a reset event to every
    /// subscriber once Redis is back). Default 10 000.
    #[cfg(feature = "redis")]
    pub fn outbox(mut self, events: usize) -> Self {
        self.config.outbox = events;
        self
    }

    /// How events are laid out on the wire. Default [`WireFormat::Named`].
    pub fn wire_format(mut self, format: WireFormat) -> Self {
        self.config.format = format;
        self
    }

    /// Sets who may see private events: see [`Authorize`] and, with the `jwt` feature,
    /// `JwtAuth`. Without one, every request is anonymous and sees public
    /// events only.
    pub fn authorizer(mut self, authorizer: impl Authorize) -> Self {
        self.config.authorizer = Authorizer(Some(Arc::new(authorizer)));
        self
    }

    /// Declares topics as private: a stream request whose selector lies within one of these
    /// (see [`TopicSelector::is_within`]) needs credentials (401 without) covering it (403
    /// otherwise). Delivery never depends on this list (a private event reaches only
    /// subscribers authorized for one of its topics); it makes a request for topics the client
    /// could never receive fail loudly instead of staying silent.
    ///
    /// ```
    /// use sse_core::{Broadcaster, TopicSelector};
    /// # fn main() -> Result<(), sse_core::InvalidTopic> {
    /// let events = Broadcaster::builder()
    ///     .private_topics([TopicSelector::parse("users/{id}/private")?])
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn private_topics(mut self, selectors: impl IntoIterator<Item = TopicSelector>) -> Self {
        self.config.private_topics.extend(selectors);
        self
    }

    /// Most streams open at once through the endpoint; past it, requests get 503 with
    /// `Retry-After`. Default: no limit.
    pub fn max_subscribers(mut self, max: usize) -> Self {
        self.config.max_subscribers = max;
        self
    }

    /// Most streams open at once from one peer IP address (the socket's, not a forwarded
    /// header, which a client could forge); past it, 503 with `Retry-After`. Default: no limit.
    pub fn max_subscribers_per_ip(mut self, max: usize) -> Self {
        self.config.max_subscribers_per_ip = max;
        self
    }

    /// Most `topic` selectors in one stream request; more is a 400. Default 32.
    pub fn max_selectors(mut self, max: usize) -> Self {
        self.config.max_selectors = max;
        self
    }

    /// Longest query string accepted on the stream endpoint, in bytes; longer is a 414.
    /// Default 4096.
    pub fn max_query_len(mut self, bytes: usize) -> Self {
        self.config.max_query_len = bytes;
        self
    }

    /// Builds the broadcaster, with a new epoch for its event ids.
    pub fn build(self) -> Broadcaster {
        if std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("actix-server worker"))
        {
            tracing::warn!(
                "a sse_core::Broadcaster was built on an actix worker thread: if this is inside \
                 the `HttpServer::new` closure, each worker gets its own broadcaster and \
                 subscribers miss events published on other workers; build it once before \
                 `HttpServer::new` and move a clone into the closure"
            );
        }
        // A large history is served from the `VecDeque`; the channel only needs to absorb
        // short bursts between a subscriber's polls.
        let capacity = self.config.history.clamp(16, 1024);
        let (tx, _) = broadcast::channel(capacity);
        let epoch = crate::id::new_epoch();
        #[cfg(feature = "redis")]
        let redis = self
            .config
            .redis
            .clone()
            .map(|redis| Arc::new(crate::redis::RedisBackend::new(redis, &self.config)));
        let broadcaster = Broadcaster {
            shared: Arc::new(Shared {
                config: self.config,
                state: Mutex::new(State {
                    epoch,
                    last_seq: 0,
                    last_id: EventId::new(epoch, 0),
                    history: VecDeque::new(),
                    history_bytes: 0,
                    tx: Some(tx),
                }),
                closed: AtomicBool::new(false),
                counters: Counters::default(),
                admitted: Mutex::default(),
                #[cfg(feature = "redis")]
                redis,
            }),
        };
        #[cfg(feature = "redis")]
        if let Some(redis) = &broadcaster.shared.redis {
            redis.start(Arc::downgrade(&broadcaster.shared));
        }
        broadcaster
    }
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
    /// Its topic is the event name; see [`Broadcaster::publish_to`] to choose.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<EventId, PublishError> {
        self.publish_with(&Delivery::to([event]), event, payload)
    }

    /// Publishes `payload` as the public event `event` on `topics` (one or more): it reaches
    /// subscribers whose selectors match one of them, and those that chose no topic.
    ///
    /// ```
    /// let events = sse_core::Broadcaster::new();
    /// events.publish_to(["users/42"], "user_updated", &serde_json::json!({"id": 42})).unwrap();
    /// ```
    pub fn publish_to<S: AsRef<str>, T: Serialize + ?Sized>(
        &self,
        topics: impl IntoIterator<Item = S>,
        event: &str,
        payload: &T,
    ) -> Result<EventId, PublishError> {
        self.publish_with(&Delivery::to(topics), event, payload)
    }

    /// Publishes `payload` as the event `event` to the audience described by `delivery`:
    /// topics, privacy, and a client not to echo the event to.
    ///
    /// ```
    /// use sse_core::{Broadcaster, Delivery};
    ///
    /// let events = Broadcaster::new();
    /// let private = Delivery::to(["orders/7"]).private();
    /// events.publish_with(&private, "order_shipped", &serde_json::json!({"id": 7})).unwrap();
    /// ```
    pub fn publish_with<T: Serialize + ?Sized>(
        &self,
        delivery: &Delivery,
        event: &str,
        payload: &T,
    ) -> Result<EventId, PublishError> {
        encode::validate_event_name(event)?;
        let route = delivery.route()?;
        let json = serde_json::to_string(payload).map_err(|source| PublishError::Serialize {
            event: event.to_owned(),
            source,
        })?;
        self.publish_data(event, Data::Json(&json), route)
    }

    /// Publishes plain text as the data of the named event `event`. Line breaks in `text` are
    /// sent as several `data:` lines, which the browser joins back with `\n`.
    pub fn publish_text(&self, event: &str, text: &str) -> Result<EventId, PublishError> {
        encode::validate_event_name(event)?;
        self.publish_data(event, Data::Text(text), Delivery::to([event]).route()?)
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

    fn publish_data(
        &self,
        event: &str,
        data: Data<'_>,
        route: Arc<Route>,
    ) -> Result<EventId, PublishError> {
        let config = &self.shared.config;
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.shared.redis {
            if self.shared.is_closed() {
                return Err(PublishError::Closed);
            }
            // Never waits for Redis: the id is assigned when the entry is appended.
            redis.enqueue(crate::redis::Outgoing::event(event, data, &route));
            self.shared
                .counters
                .published
                .fetch_add(1, Ordering::Relaxed);
            return Ok(self.last_event_id());
        }
        let mut state = self.shared.lock();
        if state.tx.is_none() {
            return Err(PublishError::Closed);
        }
        let id = EventId::new(state.epoch, state.last_seq + 1);
        // Encoded once, under the lock so that ids, history order and delivery order agree.
        let frame = Frame::new(id, encode::event(id, event, data, config.format), route);
        state.push(frame, config);
        drop(state);
        self.shared
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            subscribers: c.subscribers.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            caught_up: c.caught_up.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
            emit_failures: c.emit_failures.load(Ordering::Relaxed),
            topic_failures: c.topic_failures.load(Ordering::Relaxed),
            bad_requests: c.bad_requests.load(Ordering::Relaxed),
            unauthorized: c.unauthorized.load(Ordering::Relaxed),
            forbidden: c.forbidden.load(Ordering::Relaxed),
            over_limit: c.over_limit.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            store: self.store_stats(),
        }
    }

    #[cfg(not(feature = "redis"))]
    fn store_stats(&self) -> StoreStats {
        StoreStats::default()
    }

    #[cfg(feature = "redis")]
    fn store_stats(&self) -> StoreStats {
        let Some(redis) = &self.shared.redis else {
            return StoreStats::default();
        };
        let c = &redis.counters;
        StoreStats {
            outbox: redis.outbox_len(),
            outbox_dropped: c.outbox_dropped.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            epoch_changes: c.epoch_changes.load(Ordering::Relaxed),
            publish_latency_last_us: c.latency_last_us.load(Ordering::Relaxed),
            publish_latency_max_us: c.latency_max_us.load(Ordering::Relaxed),
        }
    }

    /// The id of the last published event, or the starting point if none was published yet.
    ///
    /// With the Redis backend: the last entry this instance has read from the stream.
    pub fn last_event_id(&self) -> EventId {
        self.shared.lock().last_id
    }

    /// Ends every open stream now and refuses further events and subscribers.
    ///
    /// Call it when the server begins a graceful shutdown (see [`Broadcaster::serve`] and
    /// [`Broadcaster::stop_server`], which do): an SSE response never ends by itself, so
    /// actix would otherwise wait its whole `shutdown_timeout` for open streams.
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Dropping the sender wakes every subscriber, which then sees `closed`.
        let tx = self.shared.lock().tx.take();
        drop(tx);
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.shared.redis {
            redis.stop();
        }
        tracing::debug!("sse broadcaster shut down");
    }

    /// Whether [`Broadcaster::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_closed()
    }
}

/// Where a new subscriber starts.
pub(crate) struct Start {
    pub(crate) rx: broadcast::Receiver<Frame>,
    /// Frames to send before live ones: preamble, then replayed events or a reset.
    pub(crate) pending: VecDeque<Bytes>,
    /// Live frames up to this sequence number were already queued or are not wanted.
    pub(crate) last_seq: u64,
    /// The id of that frame.
    pub(crate) last_id: EventId,
    /// The client's id is older than the local history: fetch what it missed up to
    /// `last_id` from the shared store before sending live frames.
    pub(crate) replay_after: Option<EventId>,
    /// The client's id is newer than what this instance has read from the shared store:
    /// skip live frames up to it.
    pub(crate) floor: Option<EventId>,
}

/// Where a `Last-Event-ID` resumes.
enum Resume {
    /// After this local sequence number, from the history.
    After(u64),
    /// From the shared store (Redis), older than the local history.
    Store(EventId),
    /// Not read here yet (another instance published it): live frames up to it are skipped.
    Ahead(EventId),
    Reset(&'static str),
}

/// What a subscriber gets after falling behind.
pub(crate) enum CatchUp {
    /// Everything it missed was queued.
    Complete { last_seq: u64, last_id: EventId },
    /// The byte budget was used up: what it missed up to `last_seq` (whose id is `last_id`,
    /// `None` when nothing was read) was queued, the rest is still in the history for the
    /// next call.
    Partial {
        last_seq: u64,
        last_id: Option<EventId>,
    },
    /// What it missed is gone: a reset event was queued.
    Reset { last_seq: u64, last_id: EventId },
}

/// A stream admitted under the subscriber limits; releases its place when dropped.
pub(crate) struct Admission {
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut admitted = self.shared.admitted();
        admitted.total = admitted.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = admitted.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    admitted.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Which subscriber limit a request ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverLimit {
    Total,
    PerIp,
}

impl Shared {
    fn admitted(&self) -> MutexGuard<'_, Admitted> {
        self.admitted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for one more endpoint stream from `ip`, if the limits allow it.
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Admission, OverLimit> {
        let mut admitted = self.admitted();
        if admitted.total >= self.config.max_subscribers {
            return Err(OverLimit::Total);
        }
        if let Some(ip) = ip {
            let n = admitted.per_ip.entry(ip).or_insert(0);
            if *n >= self.config.max_subscribers_per_ip {
                if *n == 0 {
                    admitted.per_ip.remove(&ip);
                }
                return Err(OverLimit::PerIp);
            }
            *n += 1;
        }
        admitted.total += 1;
        drop(admitted);
        Ok(Admission {
            shared: self.clone(),
            ip,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after any panic in this module's short critical sections.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn is_redis(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.redis.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// Where the client that last saw `id` resumes.
    fn resolve(&self, state: &State, id: EventId) -> Resume {
        let stale = "Last-Event-ID is from another server instance or an earlier run";
        let too_old = "Last-Event-ID is older than the server's history";
        let current = state.last_seq;
        if id.epoch() != state.epoch || id.redis_entry().is_some() != self.is_redis() {
            return Resume::Reset(stale);
        }
        if !self.is_redis() {
            let oldest = state.history.front().map_or(current + 1, |f| f.seq);
            return match id.seq() {
                seq if seq > current => Resume::Reset(stale),
                seq if seq + 1 >= oldest => Resume::After(seq),
                _ => Resume::Reset(too_old),
            };
        }
        let pos = id.position();
        if pos == state.last_id.position() {
            return Resume::After(current);
        }
        if pos > state.last_id.position() {
            // Another instance's event, a few milliseconds ahead of this one's reader. An
            // id far in the future is not one Redis gave out.
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let horizon = now_ms.max(state.last_id.position().0) + 10_000;
            return if pos.0 <= horizon {
                Resume::Ahead(id)
            } else {
                Resume::Reset(stale)
            };
        }
        match state
            .history
            .binary_search_by(|f| f.id.position().cmp(&pos))
        {
            Ok(i) => Resume::After(state.history[i].seq),
            Err(_) => Resume::Store(id),
        }
    }

    /// Registers a subscriber resuming after `last_event_id` (the raw header or query value).
    pub(crate) fn subscribe(&self, last_event_id: Option<&str>, filter: &Filter) -> Option<Start> {
        let state = self.lock();
        let rx = state.tx.as_ref()?.subscribe();
        let current = state.last_seq;
        let current_id = state.last_id;
        let mut pending = VecDeque::new();
        let mut replay_after = None;
        let mut floor = None;
        let resume = last_event_id.map(|raw| match raw.trim().parse::<EventId>() {
            Err(_) => Resume::Reset("malformed Last-Event-ID"),
            Ok(id) => self.resolve(&state, id),
        });
        match resume {
            None => pending.push_back(encode::preamble(self.config.retry, Some(current_id))),
            Some(Resume::After(after)) => {
                pending.push_back(encode::preamble(
                    self.config.retry,
                    (after == current).then_some(current_id),
                ));
                let mut last_sent = after;
                for frame in state.frames_after(after).filter(|f| filter.wants(&f.route)) {
                    pending.push_back(frame.bytes.clone());
                    last_sent = frame.seq;
                }
                // When the last missed events were not for this subscriber, move the client's
                // id past them, so that its next reconnect does not look at them again.
                if last_sent < current {
                    pending.push_back(encode::id_only(current_id));
                }
                self.counters.resumed.fetch_add(1, Ordering::Relaxed);
            }
            Some(Resume::Store(id)) => {
                pending.push_back(encode::preamble(self.config.retry, None));
                replay_after = Some(id);
            }
            Some(Resume::Ahead(id)) => {
                pending.push_back(encode::preamble(self.config.retry, None));
                floor = Some(id);
                self.counters.resumed.fetch_add(1, Ordering::Relaxed);
            }
            Some(Resume::Reset(reason)) => {
                pending.push_back(encode::preamble(self.config.retry, None));
                pending.push_back(encode::reset(current_id, reason, self.config.format));
                self.counters.resets.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    last_event_id = last_event_id.unwrap_or_default(),
                    reason,
                    "sse subscriber cannot resume; sent reset"
                );
            }
        }
        drop(state);
        self.counters.subscribers.fetch_add(1, Ordering::Relaxed);
        Some(Start {
            rx,
            pending,
            last_seq: current,
            last_id: current_id,
            replay_after,
            floor,
        })
    }

    /// Places an entry read from the shared store: history, then live subscribers.
    #[cfg(feature = "redis")]
    pub(crate) fn push_entry(&self, id: EventId, frame: Frame) {
        let mut state = self.lock();
        if id.epoch() == state.epoch && id.position() > state.last_id.position() {
            state.push(frame, &self.config);
        }
    }

    /// Starts reading the shared store's stream of epoch `id.epoch()` after `id`. A new epoch
    /// empties the local history: its ids are meaningless in the new stream.
    #[cfg(feature = "redis")]
    pub(crate) fn start_epoch(&self, id: EventId) {
        let mut state = self.lock();
        if state.epoch != id.epoch() {
            state.epoch = id.epoch();
            state.history.clear();
            state.history_bytes = 0;
        }
        state.last_id = id;
    }

    /// Queues what a subscriber that last saw `after` missed, or a reset if it is gone.
    pub(crate) fn catch_up(
        &self,
        after: u64,
        pending: &mut VecDeque<Bytes>,
        filter: &Filter,
        budget: usize,
    ) -> CatchUp {
        let state = self.lock();
        let current = state.last_seq;
        let last_id = state.last_id;
        let oldest = state.history.front().map_or(current + 1, |f| f.seq);
        if after + 1 >= oldest {
            // Bounded per call, so a subscriber far behind holds at most `budget` bytes of
            // queued frames (and of actix's write buffer) at a time.
            let mut queued = 0;
            let mut read = None;
            for frame in state.frames_after(after) {
                if queued >= budget {
                    return CatchUp::Partial {
                        last_seq: frame.seq - 1,
                        last_id: read,
                    };
                }
                read = Some(frame.id);
                if filter.wants(&frame.route) {
                    queued += frame.bytes.len();
                    pending.push_back(frame.bytes.clone());
                }
            }
            drop(state);
            self.counters.caught_up.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                missed = current - after,
                "sse subscriber fell behind; caught up from history"
            );
            CatchUp::Complete {
                last_seq: current,
                last_id,
            }
        } else {
            drop(state);
            let reason = "the subscriber fell behind further than the server's history reaches";
            pending.push_back(encode::reset(last_id, reason, self.config.format));
            self.counters.resets.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                missed = current - after,
                history = self.config.history,
                "sse subscriber fell behind beyond the history; sent reset"
            );
            CatchUp::Reset {
                last_seq: current,
                last_id,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(start: &Start) -> Vec<String> {
        start
            .pending
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
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
            s.history.iter().map(|f| f.seq).collect::<Vec<_>>(),
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
        assert!(
            s.history_bytes <= 100 && s.history.len() < 10,
            "{}",
            s.history.len()
        );
        assert_eq!(s.history.back().map(|f| f.seq), Some(10));
    }

    #[test]
    fn resume_replays_exactly_the_missed_events() {
        let b = Broadcaster::new();
        let ids: Vec<_> = (0..5).map(|i| b.publish("e", &i).unwrap()).collect();
        let start = b
            .shared
            .subscribe(Some(&ids[1].to_string()), &Filter::default())
            .unwrap();
        let f = frames(&start);
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f[1].starts_with(&format!("id: {}\n", ids[2])));
        assert!(f[3].starts_with(&format!("id: {}\n", ids[4])));
        assert_eq!(start.last_seq, 5);
        assert_eq!(b.stats().resumed, 1);
    }

    #[test]
    fn resume_at_the_head_replays_nothing() {
        let b = Broadcaster::new();
        let id = b.publish("e", &0).unwrap();
        let start = b
            .shared
            .subscribe(Some(&id.to_string()), &Filter::default())
            .unwrap();
        assert_eq!(frames(&start), [format!(": connected\nid: {id}\n\n")]);
    }

    #[test]
    fn bad_ids_get_a_reset() {
        let b = Broadcaster::builder().history(2).build();
        for i in 0..5 {
            b.publish("e", &i).unwrap();
        }
        let other_epoch = Broadcaster::new().last_event_id().to_string();
        let epoch = b.last_event_id().epoch();
        let too_old = EventId::new(epoch, 1).to_string();
        let future = EventId::new(epoch, 99).to_string();
        for bad in ["garbage", "", &other_epoch, &too_old, &future] {
            let f = frames(&b.shared.subscribe(Some(bad), &Filter::default()).unwrap());
            assert_eq!(f.len(), 2, "{bad:?}: {f:?}");
            assert!(f[1].contains("event: sse-reset\n"), "{bad:?}: {f:?}");
            assert!(f[1].starts_with(&format!("id: {}\n", b.last_event_id())));
        }
        assert_eq!(b.stats().resets, 5);
    }

    #[test]
    fn shutdown_refuses_publish_and_subscribe() {
        let b = Broadcaster::new();
        b.shutdown();
        assert!(matches!(b.publish("e", &1), Err(PublishError::Closed)));
        assert!(b.shared.subscribe(None, &Filter::default()).is_none());
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
