//! Configuration of a [`Broadcaster`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::admission::{AddrBlock, ForwardedHeader};
use super::Broadcaster;
use crate::auth::Authorize;
use crate::engine::{Engine, EngineOptions};
use crate::topic::TopicSelector;
use crate::wire::WireFormat;

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
    pub(crate) trusted_proxies: Vec<AddrBlock>,
    pub(crate) forwarded_header: ForwardedHeader,
    pub(crate) max_selectors: usize,
    pub(crate) max_query_len: usize,
    pub(crate) engine: EngineChoice,
    /// The SQL event log, for the transactions of `#[emit_event(.., transactional)]`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) event_log: Option<crate::engine::sql::EventLog>,
    pub(crate) outbox: usize,
    pub(crate) flush_timeout: Duration,
    pub(crate) compress: bool,
}

impl Config {
    /// The engine this configuration chose, opened for one broadcaster.
    pub(crate) fn open_engine(&self) -> Option<Arc<dyn Engine>> {
        let options = EngineOptions {
            history: self.history,
            history_bytes: self.history_bytes,
            outbox: self.outbox,
            relay_sender: None,
        };
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(log) = &self.event_log {
            // With a server engine too, the table is the source and the engine carries it.
            let transport = self.engine.0.as_ref().map(|(open, _)| {
                open(EngineOptions {
                    relay_sender: Some(log.relay_sender()),
                    ..options
                })
            });
            return Some(log.open_engine(options, transport));
        }
        let (open, _) = self.engine.0.as_ref()?;
        Some(open(options))
    }
}

/// Opens the event log engine chosen on the builder (none: the in-memory history alone), with
/// a description for `Debug` that holds no secret.
#[derive(Clone, Default)]
pub(crate) struct EngineChoice(Option<(Arc<OpenEngine>, String)>);

/// Opens one broadcaster's side of an event log.
type OpenEngine = dyn Fn(EngineOptions) -> Arc<dyn Engine> + Send + Sync;

impl fmt::Debug for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some((_, shown)) => f.write_str(shown),
            None => f.write_str("None"),
        }
    }
}

/// The optional [`Authorize`] implementation; `Debug` without requiring it of users.
#[derive(Clone, Default)]
pub(crate) struct Authorizer(pub(crate) Option<Arc<dyn Authorize>>);

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
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
                trusted_proxies: Vec::new(),
                forwarded_header: ForwardedHeader::default(),
                max_selectors: 32,
                max_query_len: 4096,
                engine: EngineChoice::default(),
                #[cfg(any(feature = "sqlite", feature = "postgres"))]
                event_log: None,
                outbox: 10_000,
                flush_timeout: Duration::from_secs(5),
                compress: false,
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
    /// count. Default 16 MiB.
    ///
    /// Frames are shared, not copied per subscriber, so the server's memory for events is
    /// this bound, plus the newest `min(history, 1024)` frames that the live channel of the
    /// subscribers without topics keeps (once, for all of them), plus for each subscriber
    /// with topics that stops reading at most 256 KiB of frames queued for it (past that it
    /// catches up from the history when it reads again), plus one batch of 16 KiB being
    /// written per stream. A client that resumes from far back holds a position in the
    /// history, not a copy of it.
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
    /// # fn main() -> Result<(), sse_core::error::InvalidRedisUrl> {
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
    /// [`Stats::engine`](crate::Stats::engine).
    ///
    /// `rediss://` (TLS) needs the `redis-tls` feature; an ACL user and password go in the URL
    /// (`redis://user:password@host:6379`). The password never shows in logs, errors or
    /// `Debug`.
    ///
    /// # Errors
    ///
    /// [`InvalidRedisUrl`](crate::error::InvalidRedisUrl) when redis-rs cannot use `url`
    /// (shown without its password). Nothing is connected yet: an unreachable Redis is not an
    /// error here, the engine retries in the background.
    #[cfg(feature = "redis")]
    pub fn redis(self, url: &str, stream: &str) -> Result<Self, crate::error::InvalidRedisUrl> {
        let redis = crate::engine::redis::RedisConfig::new(url, stream)?;
        let shown = format!("{redis:?}");
        Ok(self.engine(shown, move |options| redis.open(options)))
    }

    /// Shares one event stream among several server instances through the NATS JetStream
    /// stream `stream` at `url` (feature `nats`; `tls://` URLs connect with TLS). Events
    /// published on any instance reach the subscribers of all, with the same ids
    /// (`<epoch>-<seq>-<n>`: the stream's epoch, the JetStream sequence of the message and
    /// the event's place in it); a client resumes with its `Last-Event-ID` on any instance.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), sse_core::error::InvalidNatsConfig> {
    /// let events = sse_core::Broadcaster::builder()
    ///     .nats("nats://127.0.0.1:4222", "myapp-events")?
    ///     .build();
    /// # Ok(()) }
    /// ```
    ///
    /// The stream (subject `sse.<stream>`) is created if missing, keeping at most `history`
    /// messages (an event each, or a batch of those published together) and
    /// [`history_bytes`](Self::history_bytes) bytes (at least 1 MiB, so that a batch always
    /// fits), the oldest discarded first; one made beforehand keeps its own limits (messages,
    /// bytes, age). `publish`
    /// never waits for NATS: events go to a bounded [outbox](Self::outbox) that a background
    /// task publishes in order, a batch per message with a `Nats-Msg-Id` so that a batch sent
    /// again after a lost ack is stored once. Each instance follows the stream with an
    /// ordered consumer into its local history; a `Last-Event-ID` older than that is answered
    /// by getting messages by sequence. Ids from before the stream was made again (or NATS
    /// restarted without its storage) get a reset, and so do subscribers when messages were
    /// trimmed before this instance read them. See [`Stats::engine`](crate::Stats::engine).
    ///
    /// # Errors
    ///
    /// [`InvalidNatsConfig`](crate::error::InvalidNatsConfig) when `url` is not a NATS URL or
    /// `stream` is not a valid stream name. Nothing is connected yet: an unreachable server
    /// is not an error here, the engine retries in the background.
    #[cfg(feature = "nats")]
    pub fn nats(self, url: &str, stream: &str) -> Result<Self, crate::error::InvalidNatsConfig> {
        let nats = crate::engine::nats::NatsConfig::new(url, stream)?;
        let shown = format!("{nats:?}");
        Ok(self.engine(shown, move |options| nats.open(options)))
    }

    /// Shares the event stream among the broadcasters built with the same in-memory store: an
    /// engine for tests, with the faults a live one has (outages, trimming, restarts) at a
    /// call. See [`MemoryStore`](crate::testing::MemoryStore).
    ///
    /// Feature `testing`.
    ///
    /// ```
    /// use sse_core::{testing::MemoryStore, Broadcaster};
    ///
    /// let store = MemoryStore::new(1000);
    /// let a = Broadcaster::builder().memory_log(&store).build();
    /// let b = Broadcaster::builder().memory_log(&store).build();
    /// # let _ = (a, b);
    /// ```
    #[cfg(any(test, feature = "testing"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
    pub fn memory_log(self, store: &Arc<crate::engine::memory::MemoryStore>) -> Self {
        self.engine("memory".to_owned(), store.engine())
    }

    /// Keeps the events in a table of the application's own database (features `sqlite`,
    /// `postgres`): `#[emit_event(.., transactional)]` handlers write their events in the
    /// transaction of their change ([`sql::Tx`](crate::sql::Tx)), so an event exists if and
    /// only if its change committed; the history (trimmed to [`history`](Self::history),
    /// [`history_bytes`](Self::history_bytes) and
    /// [`EventLog::retain_for`](crate::sql::EventLog::retain_for)) survives restarts; every
    /// instance on the database follows the table, in commit order, and serves replays from
    /// it. `publish` outside a transaction queues the event in the [outbox](Self::outbox)
    /// and writes it in a transaction of its own.
    ///
    /// ```no_run
    /// # async fn run(pool: sqlx::PgPool) -> Result<(), sse_core::sql::EventLogError> {
    /// let log = sse_core::sql::EventLog::open(&pool).await?;
    /// let events = sse_core::Broadcaster::builder().event_log(&log).build();
    /// # let _ = events; Ok(()) }
    /// ```
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    pub fn event_log(mut self, log: &crate::engine::sql::EventLog) -> Self {
        self.config.event_log = Some(log.clone());
        self
    }

    /// Shares the event stream through `open`'s engine (one per broadcaster).
    #[cfg(any(feature = "redis", feature = "nats", feature = "testing", test))]
    pub(crate) fn engine(
        mut self,
        shown: String,
        open: impl Fn(EngineOptions) -> Arc<dyn Engine> + Send + Sync + 'static,
    ) -> Self {
        self.config.engine = EngineChoice(Some((Arc::new(open), shown)));
        self
    }

    /// With an event log engine (such as `redis` or `nats`): how many events wait for it
    /// during an outage before the oldest are dropped (counted, logged, and answered with a
    /// reset event to every subscriber once it is back). Default 10 000.
    pub fn outbox(mut self, events: usize) -> Self {
        self.config.outbox = events;
        self
    }

    /// With an event log engine: at shutdown, how long events still in the outbox may take to
    /// reach it before they are abandoned (logged and counted). Default 5 s. See
    /// [`Broadcaster::flushed`].
    pub fn flush_timeout(mut self, within: Duration) -> Self {
        self.config.flush_timeout = within;
        self
    }

    /// Sends the stream gzip-encoded to clients that accept it (`Accept-Encoding: gzip`, by
    /// its q-values; browsers send it), others as before. Default off.
    ///
    /// Each event is compressed once, for every such subscriber, the first time one of them
    /// sends it (a full flush, so it depends on nothing sent before); what remains per stream
    /// is the 10-byte gzip header and, when the stream ends cleanly, the trailer, whose CRC is
    /// combined from the events' own. Every event is still written as soon as it is
    /// published. It pays for events of a kilobyte or more of JSON or text (a 4 KiB JSON
    /// event was sent in a quarter of its bytes); events of a few hundred bytes gain little
    /// (a 200 B one took 77 %), see BENCHMARKS.md.
    ///
    /// ```
    /// let events = sse_core::Broadcaster::builder().compress(true).build();
    /// # let _ = events;
    /// ```
    pub fn compress(mut self, on: bool) -> Self {
        self.config.compress = on;
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
    /// # fn main() -> Result<(), sse_core::error::InvalidTopic> {
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

    /// Most streams open at once from one client address; past it, 503 with `Retry-After`.
    /// Default: no limit. The address is the socket's peer, or, behind a
    /// [trusted proxy](Self::trusted_proxies), the client it names; an IPv6 client is counted
    /// per /64, the block one host usually has.
    pub fn max_subscribers_per_ip(mut self, max: usize) -> Self {
        self.config.max_subscribers_per_ip = max;
        self
    }

    /// Reverse proxies (such as nginx) whose [forwarded header](Self::forwarded_header) names
    /// the client, for the per-address limit. A request from any other peer is counted under
    /// the peer's own address, whatever its headers say (a client could forge them). Default:
    /// none.
    ///
    /// ```
    /// # fn main() -> Result<(), sse_core::error::InvalidAddrBlock> {
    /// let events = sse_core::Broadcaster::builder()
    ///     .trusted_proxies(["127.0.0.1".parse()?, "10.0.0.0/8".parse()?])
    ///     .max_subscribers_per_ip(20)
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn trusted_proxies(mut self, blocks: impl IntoIterator<Item = AddrBlock>) -> Self {
        self.config.trusted_proxies.extend(blocks);
        self
    }

    /// The header a [trusted proxy](Self::trusted_proxies) names the client in; the others are
    /// ignored, since a proxy passes through those it does not set. Default
    /// [`ForwardedHeader::XForwardedFor`], which nginx's `$proxy_add_x_forwarded_for` appends
    /// to. Choose the one your proxy sets, and have it drop the client's own copy of the others
    /// (`deploy/nginx.conf` clears `Forwarded`).
    ///
    /// ```
    /// use sse_core::{Broadcaster, http::ForwardedHeader};
    /// # fn main() -> Result<(), sse_core::error::InvalidAddrBlock> {
    /// let events = Broadcaster::builder()
    ///     .trusted_proxies(["10.0.0.0/8".parse()?])
    ///     .forwarded_header(ForwardedHeader::Forwarded)
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.config.forwarded_header = header;
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
        if std::thread::current().name().is_some_and(is_worker_thread) {
            tracing::warn!(
                "a sse_core::Broadcaster was built on an actix worker thread: if this is inside \
                 the `HttpServer::new` closure, each worker gets its own broadcaster and \
                 subscribers miss events published on other workers; build it once before \
                 `HttpServer::new` and move a clone into the closure"
            );
        }
        Broadcaster::from_config(self.config)
    }
}

/// Whether a thread with this name runs an actix-web worker: under `#[actix_web::main]` the
/// workers are arbiters, on threads named `actix-rt|system:S|arbiter:A` (the system itself
/// runs on the thread that started it, such as `main`); older actix-server versions named
/// them `actix-server worker N`.
fn is_worker_thread(name: &str) -> bool {
    name.starts_with("actix-server worker")
        || name
            .strip_prefix("actix-rt|system:")
            .is_some_and(|rest| rest.contains("|arbiter:"))
}

#[cfg(test)]
mod tests {
    use super::is_worker_thread;

    #[test]
    fn worker_threads_are_told_from_the_main_thread() {
        assert!(is_worker_thread("actix-server worker 3"));
        assert!(is_worker_thread("actix-rt|system:0|arbiter:0"));
        assert!(is_worker_thread("actix-rt|system:0|arbiter:1"));
        assert!(!is_worker_thread("main"));
        assert!(!is_worker_thread("tokio-runtime-worker"));
    }
}
