//! The Redis Streams backend: one event stream shared by several server instances.
//!
//! Publishing appends to a bounded local outbox and returns at once; a publisher task drains
//! it in order with `XADD .. MAXLEN ~ <history>`. A reader task follows the stream with
//! `XREAD BLOCK` on its own connection and feeds every entry, whichever instance wrote it,
//! through the same encode-once path as the in-memory backend: local history, then the
//! broadcast channel. A `Last-Event-ID` older than the local history is answered from
//! `XRANGE`. Both tasks run on one dedicated thread, so they work whatever runtime (or none)
//! builds the broadcaster.
//!
//! The stream's epoch lives next to it in `<stream>:epoch`, created with `SET NX` on every
//! (re)connect: a Redis restarted empty (or flushed) gets a new one, so ids from before are
//! recognised as stale instead of being misread as positions in the new stream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::broadcaster::Shared;
use crate::encode::{self, Data, WireFormat};
use crate::filter::Route;
use crate::history::Frame;
use crate::id::parse_entry;
use crate::EventId;

/// Most events one `Last-Event-ID` replay fetches with `XRANGE`; a client that missed more
/// gets a reset.
pub(crate) const MAX_REPLAY: usize = 10_000;
/// Entries published in one pipeline.
const BATCH: usize = 256;
/// How long one `XREAD` blocks: also how late the reader notices a dropped broadcaster.
const BLOCK: Duration = Duration::from_secs(1);
/// How often the reader checks the epoch key, to notice a flush without a restart.
const EPOCH_CHECK: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// A Redis URL that redis-rs cannot use, from
/// [`BroadcasterBuilder::redis`](crate::BroadcasterBuilder::redis). The URL it shows has no
/// password ([`redact_url`](crate::redact_url)).
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL {url:?}: {reason}")]
pub struct InvalidRedisUrl {
    url: String,
    reason: String,
}

/// The builder's Redis settings.
#[derive(Clone)]
pub(crate) struct RedisConfig {
    pub(crate) client: redis::Client,
    pub(crate) stream: String,
    /// The URL without its password, for `Debug`.
    shown_url: String,
}

impl RedisConfig {
    pub(crate) fn new(url: &str, stream: &str) -> Result<Self, InvalidRedisUrl> {
        let shown_url = crate::redact_url(url).into_owned();
        // redis-rs builds its TLS config with rustls' process-wide provider, which is picked
        // by itself only when one provider is compiled in: install ring unless the
        // application installed one already (then this does nothing).
        #[cfg(feature = "redis-tls")]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(url).map_err(|err| InvalidRedisUrl {
            url: shown_url.clone(),
            reason: err.to_string(),
        })?;
        Ok(Self {
            client,
            stream: stream.to_owned(),
            shown_url,
        })
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.shown_url)
            .field("stream", &self.stream)
            .finish()
    }
}

/// One event waiting in the outbox, already serialized.
pub(crate) struct Outgoing {
    ticket: u64,
    queued_at: Instant,
    fields: Vec<(&'static str, String)>,
}

impl Outgoing {
    pub(crate) fn event(name: &str, data: Data<'_>, route: &Route) -> Vec<(&'static str, String)> {
        let (json, text) = match data {
            Data::Json(s) => ("1", s),
            Data::Text(s) => ("0", s),
        };
        // Topics cannot contain control characters, so a line break separates them safely.
        let mut fields = vec![
            ("n", name.to_owned()),
            ("d", text.to_owned()),
            ("j", json.to_owned()),
            ("t", route.topics.join("\n")),
        ];
        if route.private {
            fields.push(("p", "1".to_owned()));
        }
        if let Some(origin) = &route.origin {
            fields.push(("o", origin.to_string()));
        }
        fields
    }
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Outgoing>,
    next_ticket: u64,
    /// Events dropped since the last reset marker was queued.
    lost: u64,
}

#[derive(Default)]
pub(crate) struct StoreCounters {
    pub(crate) outbox_dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) epoch_changes: AtomicU64,
    pub(crate) latency_last_us: AtomicU64,
    pub(crate) latency_max_us: AtomicU64,
}

/// The instance's side of the shared stream.
pub(crate) struct RedisBackend {
    client: redis::Client,
    key: String,
    epoch_key: String,
    outbox_cap: usize,
    maxlen: usize,
    format: WireFormat,
    /// Names this instance's entries (with a ticket each) for duplicate detection.
    instance: u64,
    outbox: Mutex<Outbox>,
    wake: Notify,
    stop: watch::Sender<bool>,
    /// The publisher's connection, shared with `XRANGE` replays; `None` while disconnected.
    conn: Mutex<Option<MultiplexedConnection>>,
    pub(crate) counters: StoreCounters,
}

impl RedisBackend {
    pub(crate) fn new(redis: RedisConfig, config: &crate::builder::Config) -> Self {
        Self {
            client: redis.client,
            epoch_key: format!("{}:epoch", redis.stream),
            key: redis.stream,
            outbox_cap: config.outbox.max(1),
            maxlen: config.history.max(1),
            format: config.format,
            instance: crate::id::new_epoch(),
            outbox: Mutex::new(Outbox {
                // Ticket 0 is the reset marker's.
                next_ticket: 1,
                ..Outbox::default()
            }),
            wake: Notify::new(),
            stop: watch::channel(false).0,
            conn: Mutex::new(None),
            counters: StoreCounters::default(),
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conn(&self) -> MutexGuard<'_, Option<MultiplexedConnection>> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn outbox_len(&self) -> usize {
        self.outbox().queue.len()
    }

    /// Queues an event for the publisher task; never waits. A full outbox drops its oldest
    /// event, and a reset marker is published later so every subscriber learns of the loss.
    pub(crate) fn enqueue(&self, fields: Vec<(&'static str, String)>) {
        let mut outbox = self.outbox();
        if outbox.queue.len() >= self.outbox_cap {
            outbox.queue.pop_front();
            outbox.lost += 1;
            self.counters.outbox_dropped.fetch_add(1, Ordering::Relaxed);
            if outbox.lost == 1 || outbox.lost.is_power_of_two() {
                tracing::warn!(
                    capacity = self.outbox_cap,
                    dropped = outbox.lost,
                    "sse outbox full while Redis is unreachable; dropped the oldest event"
                );
            }
        }
        let ticket = outbox.next_ticket;
        outbox.next_ticket += 1;
        outbox.queue.push_back(Outgoing {
            ticket,
            queued_at: Instant::now(),
            fields,
        });
        drop(outbox);
        self.wake.notify_one();
    }

    /// Stops both tasks (after a last attempt to publish what is queued).
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
        self.wake.notify_one();
    }

    /// Starts the publisher and reader tasks on their own thread.
    pub(crate) fn start(self: &Arc<Self>, shared: Weak<Shared>) {
        let backend = self.clone();
        let spawned = std::thread::Builder::new()
            .name("sse-redis".to_owned())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        tracing::error!(%err, "sse redis backend: cannot build its runtime; events stay in the outbox");
                        return;
                    }
                };
                rt.block_on(async {
                    tokio::join!(
                        backend.clone().publisher(shared.clone()),
                        backend.reader(shared)
                    );
                });
            });
        if let Err(err) = spawned {
            tracing::error!(%err, "sse redis backend: cannot start its thread; events stay in the outbox");
        }
    }

    fn stopping(&self, shared: &Weak<Shared>) -> bool {
        *self.stop.borrow() || shared.strong_count() == 0
    }

    /// Connects and makes sure the stream has an epoch; returns the connection and the epoch.
    async fn connect(&self) -> redis::RedisResult<(MultiplexedConnection, u64)> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let (epoch,): (String,) = redis::pipe()
            .cmd("SET")
            .arg(&self.epoch_key)
            .arg(crate::id::new_epoch())
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&self.epoch_key)
            .query_async(&mut conn)
            .await?;
        let epoch = epoch.parse().map_err(|_| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the stream's epoch key does not hold a number",
                epoch,
            ))
        })?;
        Ok((conn, epoch))
    }

    fn failed(&self, task: &str, err: &redis::RedisError) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(task, stream = self.key, %err, "sse redis backend: Redis unreachable or failing; retrying");
    }

    /// Publishes the outbox in order; on any error reconnects with backoff and sends the
    /// unacknowledged events again.
    async fn publisher(self: Arc<Self>, shared: Weak<Shared>) {
        let mut stop = self.stop.subscribe();
        let mut backoff = BACKOFF_START;
        let mut connected_before = false;
        loop {
            let mut conn = match self.connect().await {
                Ok((conn, _)) => conn,
                Err(err) => {
                    self.failed("publisher", &err);
                    if self.stopping(&shared) {
                        self.abandon();
                        return;
                    }
                    let _ = tokio::time::timeout(backoff, stop.changed()).await;
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                    continue;
                }
            };
            if std::mem::replace(&mut connected_before, true) {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    stream = self.key,
                    "sse redis backend: publisher reconnected"
                );
            }
            backoff = BACKOFF_START;
            *self.conn() = Some(conn.clone());
            loop {
                let (batch, lost) = self.peek_batch();
                if batch.is_empty() && lost == 0 {
                    if self.stopping(&shared) {
                        return;
                    }
                    // The timeout only bounds how late a dropped broadcaster is noticed.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
                    continue;
                }
                let mut pipe = redis::pipe();
                if lost > 0 {
                    let reason =
                        format!("{lost} events were lost while the event store was unreachable");
                    self.xadd(&mut pipe, &[("r", reason)], 0);
                }
                for out in &batch {
                    self.xadd(&mut pipe, &out.1, out.0);
                }
                match pipe.query_async::<()>(&mut conn).await {
                    Ok(()) => {
                        let now = Instant::now();
                        if let Some(oldest) = batch.first() {
                            // Queue time included: what a handler's event waits for Redis.
                            let us = u64::try_from(now.duration_since(oldest.2).as_micros())
                                .unwrap_or(u64::MAX);
                            self.counters.latency_last_us.store(us, Ordering::Relaxed);
                            self.counters
                                .latency_max_us
                                .fetch_max(us, Ordering::Relaxed);
                        }
                        self.ack(batch.last().map(|b| b.0), lost);
                    }
                    Err(err) => {
                        self.failed("publisher", &err);
                        *self.conn() = None;
                        if self.stopping(&shared) {
                            self.abandon();
                            return;
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Logs what is left in the outbox when the broadcaster stops with Redis unreachable.
    fn abandon(&self) {
        let left = self.outbox_len();
        if left > 0 {
            self.counters
                .outbox_dropped
                .fetch_add(left as u64, Ordering::Relaxed);
            tracing::error!(
                events = left,
                stream = self.key,
                "sse redis backend stopped with Redis unreachable; queued events not published"
            );
        }
    }

    fn xadd(&self, pipe: &mut redis::Pipeline, fields: &[(&'static str, String)], ticket: u64) {
        let cmd = pipe
            .cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.maxlen)
            .arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(v.as_str());
        }
        // Who sent it, and its place in that sender's order: a batch sent again after a
        // lost reply is recognised by the readers instead of being delivered twice.
        cmd.arg("i").arg(format!("{}-{ticket}", self.instance));
        cmd.ignore();
    }

    /// A copy of the next events to publish (they stay queued until acknowledged) and the
    /// number lost since the last reset marker.
    #[allow(clippy::type_complexity)]
    fn peek_batch(&self) -> (Vec<(u64, Vec<(&'static str, String)>, Instant)>, u64) {
        let outbox = self.outbox();
        let batch = outbox
            .queue
            .iter()
            .take(BATCH)
            .map(|o| (o.ticket, o.fields.clone(), o.queued_at))
            .collect();
        (batch, outbox.lost)
    }

    /// Removes the events up to `ticket` (some may already have been dropped meanwhile).
    fn ack(&self, ticket: Option<u64>, lost: u64) {
        let mut outbox = self.outbox();
        outbox.lost -= lost.min(outbox.lost);
        if let Some(ticket) = ticket {
            while outbox.queue.front().is_some_and(|o| o.ticket <= ticket) {
                outbox.queue.pop_front();
            }
        }
    }

    /// Follows the stream and fans every entry out locally. Resumes after the last entry read
    /// when Redis comes back; starts over at the new stream when its epoch changed.
    async fn reader(self: Arc<Self>, shared: Weak<Shared>) {
        let mut stop = self.stop.subscribe();
        let mut backoff = BACKOFF_START;
        // The epoch and the last entry read.
        let mut position: Option<(u64, String)> = None;
        let mut senders = Senders::default();
        loop {
            if self.stopping(&shared) {
                return;
            }
            let (mut conn, epoch) = match self.connect().await {
                Ok(ok) => ok,
                Err(err) => {
                    self.failed("reader", &err);
                    let _ = tokio::time::timeout(backoff, stop.changed()).await;
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                    continue;
                }
            };
            backoff = BACKOFF_START;
            let mut last = match position.take() {
                Some((known, last)) if known == epoch => last,
                previous => {
                    let last = if previous.is_some() {
                        self.counters.epoch_changes.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            stream = self.key,
                            "sse redis backend: the stream's epoch changed (Redis restarted empty \
                             or was flushed); ids from before get a reset"
                        );
                        "0-0".to_owned()
                    } else {
                        match self.newest(&mut conn).await {
                            Ok(last) => last,
                            Err(err) => {
                                self.failed("reader", &err);
                                continue;
                            }
                        }
                    };
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    let (ms, n) = parse_entry(&last).unwrap_or((0, 0));
                    shared.start_epoch(EventId::entry(epoch, ms, n));
                    last
                }
            };
            let mut checked = Instant::now();
            loop {
                if checked.elapsed() >= EPOCH_CHECK {
                    checked = Instant::now();
                    match self.epoch_now(&mut conn).await {
                        Ok(Some(now)) if now == epoch => {}
                        // Flushed (or the key deleted): reconnecting sets and reads it anew.
                        Ok(_) => break,
                        Err(err) => {
                            self.failed("reader", &err);
                            break;
                        }
                    }
                }
                let mut xread = redis::cmd("XREAD");
                xread
                    .arg("COUNT")
                    .arg(BATCH)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.key)
                    .arg(&last);
                let read = tokio::select! {
                    read = xread.query_async::<Option<StreamReadReply>>(&mut conn) => read,
                    _ = stop.changed() => return,
                };
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                match read {
                    Ok(reply) => {
                        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                            if senders.is_repeat(&entry) {
                                last = entry.id;
                                continue;
                            }
                            match self.frame(epoch, &entry) {
                                Some((id, frame)) => shared.push_entry(id, frame),
                                None => {
                                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(
                                        stream = self.key,
                                        entry = entry.id,
                                        "sse redis backend: skipped a malformed stream entry"
                                    );
                                }
                            }
                            last = entry.id;
                        }
                    }
                    Err(err) => {
                        self.failed("reader", &err);
                        break;
                    }
                }
                if shared.is_closed() {
                    return;
                }
            }
            position = Some((epoch, last));
            let _ = tokio::time::timeout(backoff, stop.changed()).await;
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    /// The epoch key's value now, `None` if it is missing or not a number.
    async fn epoch_now(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<Option<u64>> {
        let value: Option<String> = redis::cmd("GET")
            .arg(&self.epoch_key)
            .query_async(conn)
            .await?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    /// The id of the stream's newest entry, or `0-0`.
    async fn newest(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_owned(), |e| e.id))
    }

    /// Decodes and encodes one stream entry; `None` if it is not one of ours.
    fn frame(&self, epoch: u64, entry: &StreamId) -> Option<(EventId, Frame)> {
        let (ms, n) = parse_entry(&entry.id)?;
        let id = EventId::entry(epoch, ms, n);
        let map = &entry.map;
        if let Some(reason) = text(map, "r") {
            let bytes = encode::reset(id, &reason, self.format);
            return Some((id, Frame::new(id, bytes, Arc::new(Route::everyone()))));
        }
        let name = text(map, "n")?;
        let data = text(map, "d")?;
        encode::validate_event_name(&name).ok()?;
        let topics = text(map, "t")?;
        let route = Route {
            topics: topics.split('\n').map(Into::into).collect(),
            private: text(map, "p").is_some_and(|p| p == "1"),
            origin: text(map, "o").map(Into::into),
            everyone: false,
        };
        let data = match text(map, "j").as_deref() {
            Some("1") => Data::Json(&data),
            _ => Data::Text(&data),
        };
        let bytes = encode::event(id, &name, data, self.format);
        Some((id, Frame::new(id, bytes, Arc::new(route))))
    }

    /// The entries after `after` up to `upto`, for a `Last-Event-ID` older than the local
    /// history; an error (the reason for the reset) when `after` is no longer in the stream,
    /// more than `max` events were missed, or Redis cannot be asked.
    pub(crate) async fn replay(
        &self,
        after: EventId,
        upto: EventId,
        max: usize,
    ) -> Result<Vec<Frame>, &'static str> {
        let (Some((ams, an)), Some((ums, un))) = (after.redis_entry(), upto.redis_entry()) else {
            return Err("Last-Event-ID is from another server instance or an earlier run");
        };
        let conn = self.conn().clone();
        let Some(mut conn) = conn else {
            return Err("the event store is unreachable; cannot replay");
        };
        let from = format!("{ams}-{an}");
        let mut pipe = redis::pipe();
        pipe.cmd("XRANGE")
            .arg(&self.key)
            .arg(&from)
            .arg(&from)
            .cmd("XRANGE")
            .arg(&self.key)
            .arg(format!("({from}"))
            .arg(format!("{ums}-{un}"))
            .arg("COUNT")
            .arg(max.saturating_add(1));
        let query = pipe.query_async::<(StreamRangeReply, StreamRangeReply)>(&mut conn);
        let (found, missed) = match tokio::time::timeout(RESPONSE_TIMEOUT, query).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(err)) => {
                self.failed("replay", &err);
                return Err("the event store is unreachable; cannot replay");
            }
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stream = self.key, "sse redis backend: replay timed out");
                return Err("the event store is unreachable; cannot replay");
            }
        };
        // `0-0` (a stream that was empty) is never an entry.
        if (found.ids.is_empty() && (ams, an) != (0, 0)) || missed.ids.len() > max {
            return Err("Last-Event-ID is older than the server's history");
        }
        let mut senders = Senders::default();
        Ok(missed
            .ids
            .iter()
            .filter(|e| !senders.is_repeat(e))
            .filter_map(|e| self.frame(after.epoch(), e).map(|(_, f)| f))
            .collect())
    }
}

/// The last ticket seen from each sending instance.
#[derive(Default)]
struct Senders(HashMap<u64, u64>);

impl Senders {
    /// Whether `entry` repeats one already seen: an instance sends a batch again when the
    /// reply to it was lost, so tickets from one sender only ever increase otherwise.
    fn is_repeat(&mut self, entry: &StreamId) -> bool {
        let Some((instance, ticket)) = text(&entry.map, "i").and_then(|i| parse_entry(&i)) else {
            return false;
        };
        if ticket == 0 {
            return false;
        }
        let last = self.0.entry(instance).or_insert(0);
        if ticket <= *last {
            tracing::debug!(
                entry = entry.id,
                "sse redis backend: skipped a repeated entry"
            );
            return true;
        }
        *last = ticket;
        false
    }
}

fn text(map: &HashMap<String, Value>, field: &str) -> Option<String> {
    redis::from_redis_value_ref(map.get(field)?).ok()
}

#[cfg(test)]
mod tests {
    use crate::Broadcaster;

    #[test]
    fn debug_output_hides_the_redis_password() {
        let builder = Broadcaster::builder()
            .redis("redis://user:secret@127.0.0.1:1", "s")
            .expect("valid URL");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
        let events = builder.build();
        let shown = format!("{events:?}");
        assert!(!shown.contains("secret"), "{shown}");
        events.shutdown();
    }

    #[test]
    fn an_invalid_url_error_hides_the_password() {
        let err = Broadcaster::builder()
            .redis("nosuchscheme://user:secret@127.0.0.1:1", "s")
            .expect_err("unknown scheme");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!format!("{err:?}").contains("secret"), "{err:?}");
    }
}
