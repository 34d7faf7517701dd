//! The Redis Streams engine: one event stream shared by several server instances.
//!
//! Publishing appends to a bounded local [outbox](outbox) and returns at once; the
//! [publisher] drains it in order with `XADD .. MAXLEN ~ <history>`. The [reader] follows the
//! stream with `XREAD BLOCK` on its own connection and hands every entry, whichever instance
//! wrote it, to the fan-out. A `Last-Event-ID` older than the local history is answered by
//! [replay] with `XRANGE`. The tasks run on one dedicated thread, so they work whatever
//! runtime (or none) builds the broadcaster.
//!
//! The stream's epoch lives next to it in `<stream>:epoch`, created with `SET NX` on every
//! (re)connect: a Redis restarted empty (or flushed) gets a new one, so ids from before are
//! recognised as stale instead of being misread as positions in the new stream.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamId;
use redis::{AsyncConnectionConfig, Value};

use super::link::EngineLink;
use super::{
    Append, Body, Engine, EngineOptions, EngineStats, Entry, Relayed, ReplayFrom, ReplayFuture,
    Senders, Sink, StopFuture,
};
use crate::error::InvalidRedisUrl;
use crate::topic::Route;
use crate::wire::id::parse_entry;
use crate::wire::ResetReason;
use crate::wire::{new_epoch, EventId};

mod outbox;
mod publisher;
mod reader;
mod replay;

/// Entries published in one pipeline, and read in one `XREAD`.
const BATCH: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// What redis-rs says of a URL it refuses; without the part of the URL it quotes (such as an
/// unknown `protocol`) when the URL holds a password, which that part may be the end of.
fn reason(err: &redis::RedisError, has_password: bool) -> String {
    let reason = err.to_string();
    match err.detail() {
        Some(quoted) if has_password => (reason.strip_suffix(quoted))
            .map_or("the URL does not parse".to_owned(), |r| {
                r.trim_end_matches([':', ' ']).to_owned()
            }),
        _ => reason,
    }
}

/// The builder's Redis settings.
#[derive(Clone)]
pub(crate) struct RedisConfig {
    client: redis::Client,
    stream: String,
    /// The URL without its password, for `Debug` and logs.
    shown_url: String,
}

impl RedisConfig {
    pub(crate) fn new(url: &str, stream: &str) -> Result<Self, InvalidRedisUrl> {
        let shown_url = super::redact_url(url).into_owned();
        // redis-rs builds its TLS config with rustls' process-wide provider, which is picked
        // by itself only when one provider is compiled in: install ring unless the
        // application installed one already (then this does nothing).
        #[cfg(feature = "redis-tls")]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(url).map_err(|err| InvalidRedisUrl {
            reason: reason(&err, shown_url != url),
            url: shown_url.clone(),
        })?;
        Ok(Self {
            client,
            stream: stream.to_owned(),
            shown_url,
        })
    }

    /// The engine for one broadcaster.
    pub(crate) fn open(&self, options: EngineOptions) -> Arc<dyn Engine> {
        Arc::new(RedisLog::new(self.clone(), options))
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

/// One instance's side of the shared stream.
pub(crate) struct RedisLog {
    client: redis::Client,
    key: String,
    epoch_key: String,
    maxlen: usize,
    /// Names this instance's entries (with a ticket each) for duplicate detection.
    instance: u64,
    /// The outbox, the stop and flush signals, the replay queue and the counters.
    ctl: EngineLink<outbox::Fields>,
}

impl Engine for RedisLog {
    fn follow(self: Arc<Self>, sink: Weak<dyn Sink>) {
        EngineLink::spawn(
            self,
            |log| &log.ctl,
            |log, requests| async move {
                let replays = async {
                    if let Some(requests) = requests {
                        log.ctl.serve_replays(&*log, &sink, requests).await;
                    }
                };
                tokio::join!(
                    publisher::run(log.clone(), sink.clone()),
                    reader::run(log.clone(), sink.clone()),
                    replays,
                );
            },
        );
    }

    fn append(&self, event: Append) {
        self.ctl.append(outbox::fields(event));
    }

    fn relay(&self, row: Relayed, ticket: u64) -> bool {
        let fields = match row {
            Relayed::Event(event) => outbox::fields(event),
            Relayed::Marker(reason) => vec![("r", reason)],
        };
        self.ctl.relay(fields, ticket);
        true
    }

    fn replay(
        &self,
        from: ReplayFrom,
        upto: EventId,
        max: usize,
        seen: Option<Senders>,
    ) -> ReplayFuture {
        self.ctl.replay(from, upto, max, seen)
    }

    fn may_be_ahead(&self, id: EventId, last_read: EventId) -> bool {
        // Entry ids start with Redis's clock in milliseconds: one far in the future is not one
        // Redis gave out.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let horizon = now_ms.max(last_read.position().0) + 10_000;
        id.position().0 <= horizon
    }

    fn stop(&self, flush: Duration) {
        self.ctl.stop(flush);
    }

    fn stopped(&self) -> StopFuture {
        self.ctl.stopped()
    }

    fn stats(&self) -> EngineStats {
        self.ctl.stats()
    }
}

impl RedisLog {
    fn new(redis: RedisConfig, options: EngineOptions) -> Self {
        Self {
            client: redis.client,
            epoch_key: format!("{}:epoch", redis.stream),
            key: redis.stream,
            maxlen: options.history.max(1),
            instance: options.relay_sender.unwrap_or_else(new_epoch),
            ctl: EngineLink::new("redis", options.outbox),
        }
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
            .arg(new_epoch())
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

    fn failed(&self, task: &str, err: &dyn std::fmt::Display) {
        self.ctl.counters.failed();
        tracing::warn!(task, stream = self.key, %err, "sse redis engine: Redis unreachable or failing; retrying");
    }
}

/// Decodes one stream entry of the stream of epoch `epoch`; `None` if it is not one of ours.
fn decode(epoch: u64, entry: &StreamId) -> Option<Entry> {
    let (ms, n) = parse_entry(&entry.id)?;
    let id = EventId::entry(epoch, ms, n);
    let map = &entry.map;
    if let Some(reason) = text(map, "r") {
        let body = Body::Reset(ResetReason::from_marker(&reason));
        return Some(Entry { id, body });
    }
    let name = text(map, "n")?;
    let data = text(map, "d")?;
    crate::wire::validate_event_name(&name).ok()?;
    let topics = text(map, "t")?;
    let route = Route {
        topics: topics.split('\n').map(Into::into).collect(),
        private: text(map, "p").is_some_and(|p| p == "1"),
        origin: text(map, "o").map(Into::into),
        everyone: false,
    };
    let event = Append {
        name,
        data,
        json: text(map, "j").is_some_and(|j| j == "1"),
        route: Arc::new(route),
        wire_id: text(map, "w").filter(|w| !w.contains(['\r', '\n'])),
        retry: text(map, "y").and_then(|y| y.parse().ok()),
    };
    Some(Entry {
        id,
        body: Body::Event(event),
    })
}

/// The sender and ticket of an entry (field `i`: `<instance>-<ticket>`).
fn sender(entry: &StreamId) -> Option<(u64, u64)> {
    text(&entry.map, "i").and_then(|i| parse_entry(&i))
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

    #[test]
    fn an_invalid_url_error_hides_a_password_holding_a_slash_or_question_mark() {
        for (url, secret) in [
            // Parsed as host `u`, port 12 and database `34@127.0.0.1:1`.
            ("redis://u:12/34@127.0.0.1:1", "12/34"),
            ("redis://u:c2Vj/cmV0@127.0.0.1:1", "cmV0"),
            // redis-rs quotes the `protocol` it does not know: here the password's end.
            ("redis://u:12?protocol=S3cr3t@127.0.0.1:1", "S3cr3t"),
        ] {
            let err = Broadcaster::builder()
                .redis(url, "s")
                .expect_err("not a usable URL");
            assert!(!err.to_string().contains(secret), "{err}");
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
            assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        }
    }

    /// Entries as anyone with write access to the stream could leave them: skipped or encoded,
    /// never a panic, and never a frame that breaks the SSE framing.
    mod entries_from_outside {
        use std::collections::HashMap;

        use proptest::prelude::*;
        use redis::streams::StreamId;
        use redis::Value;

        use super::super::{decode, sender};
        use crate::wire::WireFormat;

        fn field() -> impl Strategy<Value = (String, Value)> {
            (
                prop::sample::select(vec!["n", "d", "j", "t", "p", "o", "r", "i", "x"]),
                prop_oneof![
                    "\\PC{0,12}".prop_map(|s: String| Value::BulkString(s.into_bytes())),
                    prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::BulkString),
                    any::<i64>().prop_map(Value::Int),
                    Just(Value::Nil),
                ],
            )
                .prop_map(|(k, v)| (k.to_owned(), v))
        }

        proptest! {
            #[test]
            fn any_entry_is_skipped_or_framed(
                id in "[0-9]{0,14}-?[0-9]{0,4}|\\PC{0,8}",
                fields in prop::collection::vec(field(), 0..8),
            ) {
                let entry = StreamId {
                    id,
                    map: fields.into_iter().collect::<HashMap<_, _>>(),
                    ..StreamId::default()
                };
                let _ = sender(&entry);
                for format in [WireFormat::Named, WireFormat::Envelope] {
                    if let Some(entry) = decode(7, &entry) {
                        let frame = crate::fanout::frame::Frame::encode(entry, format);
                        let text = String::from_utf8_lossy(&frame.bytes);
                        // One frame: it ends with the only blank line.
                        prop_assert!(text.ends_with("\n\n"), "{text:?}");
                        prop_assert_eq!(text.matches("\n\n").count(), 1, "{:?}", text);
                    }
                }
            }
        }
    }
}
