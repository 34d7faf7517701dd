//! The NATS JetStream engine: one JetStream stream shared by several server instances.
//!
//! Publishing appends to the bounded shared [outbox](crate::engine::outbox) and returns at once;
//! the [publisher] sends what is queued as one JetStream message (a [record] batch) at a
//! time, with `Nats-Msg-Id: <instance>-<ticket>`, and sends the next only once the previous
//! is acknowledged: a publish lost in an outage is sent again, the same, before anything
//! after it, so order holds and JetStream drops the copy if the first one was stored after
//! all. The [follower] reads the stream with an ordered consumer and hands every event,
//! whichever instance wrote it, to the fan-out. A `Last-Event-ID` older than the local
//! history is answered by [replay] with direct gets by sequence. The tasks run on one
//! dedicated thread, so they work whatever runtime (or none) builds the broadcaster.
//!
//! An event's id is `<epoch>-<seq>-<n>`: the stream's epoch (its creation time, so a stream
//! deleted and created again, or a server restarted empty, gives ids that are recognised as
//! stale), the JetStream sequence of the message and the event's place in it. Stream
//! sequences are consecutive, so a sequence that jumps past the last one read means messages
//! were trimmed (max messages, bytes or age) before this instance read them: a gap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::sync::watch;

use super::link::EngineLink;
use super::redact::hide_userinfo;
use super::{
    Append, Engine, EngineOptions, EngineStats, Relayed, ReplayFrom, ReplayFuture, Senders, Sink,
    StopFuture,
};
use crate::error::InvalidNatsConfig;
use crate::wire::{new_epoch, EventId};

mod follower;
mod publisher;
mod record;
mod replay;

use record::Record;

/// Most events in one published message (and so in flight at once).
const BATCH: usize = 256;
/// Most payload bytes in one published message: under NATS's default `max_payload` (1 MiB).
const BATCH_BYTES: usize = 512 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a JetStream request (an ack, a stream info, a get) may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(1);
/// How far past the newest sequence this instance knows an id may be and still be one that
/// another instance published and this one has not read yet.
const AHEAD_MARGIN: u64 = 10_000;

/// The builder's NATS settings.
#[derive(Clone)]
pub(crate) struct NatsConfig {
    addr: async_nats::ServerAddr,
    /// The URL as logs show it: no credentials.
    shown: String,
    stream: String,
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The address can hold credentials: only what logs show.
        f.debug_struct("NatsConfig")
            .field("server", &self.shown)
            .field("stream", &self.stream)
            .finish()
    }
}

impl NatsConfig {
    pub(crate) fn new(url: &str, stream: &str) -> Result<Self, InvalidNatsConfig> {
        let addr: async_nats::ServerAddr =
            url.parse()
                .map_err(|err: std::io::Error| InvalidNatsConfig {
                    // All of the user info: a NATS token is a user name.
                    what: format!("URL {:?}", hide_userinfo(url)),
                    reason: err.to_string(),
                })?;
        let scheme = if addr.tls_required() { "tls" } else { "nats" };
        let shown = format!("{scheme}://{}:{}", addr.host(), addr.port());
        // A stream name is also its subject: one token, no wildcards.
        let valid = !stream.is_empty()
            && stream.len() <= 200
            && stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(InvalidNatsConfig {
                what: format!("stream {stream:?}"),
                reason: "a JetStream stream name is 1 to 200 letters, digits, '-' or '_'".into(),
            });
        }
        Ok(Self {
            addr,
            shown,
            stream: stream.to_owned(),
        })
    }

    /// The engine for one broadcaster.
    pub(crate) fn open(&self, options: EngineOptions) -> Arc<dyn Engine> {
        Arc::new(NatsLog::new(self.clone(), options))
    }
}

/// One instance's side of the shared stream.
pub(crate) struct NatsLog {
    config: NatsConfig,
    subject: String,
    history: usize,
    history_bytes: usize,
    /// Names this instance's messages (with a ticket each) for duplicate detection.
    instance: u64,
    /// Relaying the SQL event log: one event per message, so that a message's id
    /// (`<relay>-<position>`) names one row, whichever instance relays it.
    relaying: bool,
    /// The outbox, the stop and flush signals, the replay queue and the counters.
    ctl: EngineLink<Record>,
    /// Counts the client's (re)connections: a consumer does not always survive a server
    /// restart, so the follower makes a new one on each.
    connections: watch::Sender<u64>,
    /// The newest stream sequence this instance knows of (acks, reads, stream info).
    known_last: AtomicU64,
}

impl Engine for NatsLog {
    fn follow(self: Arc<Self>, sink: Weak<dyn Sink>) {
        EngineLink::spawn(
            self,
            |log| &log.ctl,
            |log, requests| async move {
                let Some(js) = log.connect().await else {
                    log.ctl.finished();
                    return;
                };
                let replays = async {
                    if let Some(requests) = requests {
                        let pages = replay::Pages { log: &log, js: &js };
                        log.ctl.serve_replays(&pages, &sink, requests).await;
                    }
                };
                tokio::join!(
                    publisher::run(&log, &js, &sink),
                    follower::run(&log, &js, &sink),
                    replays,
                );
            },
        );
    }

    fn append(&self, event: Append) {
        self.ctl.append(Record::event(event));
    }

    fn relay(&self, row: Relayed, ticket: u64) -> bool {
        let record = match row {
            Relayed::Event(event) => Record::event(event),
            Relayed::Marker(reason) => Record::reset(reason),
        };
        self.ctl.relay(record, ticket);
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
        let known = self.known_last.load(Ordering::Relaxed);
        id.position().0 <= known.max(last_read.position().0) + AHEAD_MARGIN
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

impl NatsLog {
    fn new(config: NatsConfig, options: EngineOptions) -> Self {
        Self {
            subject: format!("sse.{}", config.stream),
            config,
            history: options.history.max(1),
            // A published message (a batch) is at most `BATCH_BYTES` or one event: the stream
            // must hold one, or NATS refuses it.
            history_bytes: options.history_bytes.max(2 * BATCH_BYTES),
            instance: options.relay_sender.unwrap_or_else(new_epoch),
            relaying: options.relay_sender.is_some(),
            ctl: EngineLink::new("nats", options.outbox),
            connections: watch::channel(0).0,
            known_last: AtomicU64::new(0),
        }
    }

    /// The client, shared by the three tasks. It reconnects by itself for as long as the
    /// engine runs (the first connection too: the server may be down when the broadcaster
    /// starts), so the tasks only retry their requests; what it tells of its connection is
    /// counted and reported in [`NatsLog::client_event`]. `None` if the settings cannot work.
    async fn connect(self: &Arc<Self>) -> Option<jetstream::Context> {
        // Weak: the client's task holds the callback, and must not keep the engine alive.
        let log = Arc::downgrade(self);
        let options = async_nats::ConnectOptions::new()
            .name("sse-core")
            .connection_timeout(CONNECT_TIMEOUT)
            .retry_on_initial_connect()
            .max_reconnects(None)
            // Short: an outage of a second or two should cost about that, not a long backoff.
            .reconnect_delay_callback(|attempts| {
                let doublings = u32::try_from(attempts.min(5)).unwrap_or(5);
                (BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_CAP)
            })
            .event_callback(move |event| {
                if let Some(log) = log.upgrade() {
                    log.client_event(&event);
                }
                std::future::ready(())
            });
        match options.connect(self.config.addr.clone()).await {
            Ok(client) => Some(
                jetstream::ContextBuilder::new()
                    .timeout(RESPONSE_TIMEOUT)
                    .build(client),
            ),
            Err(err) => {
                tracing::error!(server = self.config.shown, %err, "sse nats engine: cannot use the NATS settings; events stay in the outbox");
                self.ctl.counters.failed();
                None
            }
        }
    }

    /// The stream, created if missing (limits: `history` messages, `history_bytes` bytes),
    /// and its epoch. A stream made beforehand keeps its own limits.
    async fn stream(
        &self,
        js: &jetstream::Context,
    ) -> Result<(stream::Stream, u64), async_nats::Error> {
        let mut stream = js
            .get_or_create_stream(stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![self.subject.clone()],
                max_messages: i64::try_from(self.history).unwrap_or(i64::MAX),
                max_bytes: i64::try_from(self.history_bytes).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await?;
        let info = stream.info().await?;
        self.known_last
            .fetch_max(info.state.last_sequence, Ordering::Relaxed);
        let epoch = epoch(info);
        Ok((stream, epoch))
    }

    /// What the client tells of its connection: a connection after the first is a reconnect
    /// (counted and reported as Redis's are, and the follower makes a new consumer); a lost
    /// connection or a client or server error is a failure, counted.
    fn client_event(&self, event: &async_nats::Event) {
        use async_nats::Event;
        match event {
            Event::Connected => {
                let mut again = false;
                self.connections.send_modify(|n| {
                    again = *n > 0;
                    *n += 1;
                });
                if again {
                    self.ctl.counters.reconnected();
                    tracing::info!(
                        stream = self.config.stream,
                        server = self.config.shown,
                        "sse nats engine: reconnected"
                    );
                }
            }
            Event::Disconnected | Event::ServerError(_) | Event::ClientError(_) => {
                self.failed("client", event);
            }
            _ => {}
        }
    }

    fn failed(&self, task: &str, err: &dyn std::fmt::Display) {
        self.ctl.counters.failed();
        tracing::warn!(
            task,
            stream = self.config.stream,
            server = self.config.shown,
            %err,
            "sse nats engine: NATS unreachable or failing; retrying"
        );
    }
}

/// The epoch of a stream: its creation time, which a stream deleted and made again (or a
/// server restarted without its storage) does not keep.
fn epoch(info: &stream::Info) -> u64 {
    u64::try_from(info.created.unix_timestamp_nanos()).unwrap_or(0)
}

/// The sender and ticket of a message (`Nats-Msg-Id: <instance>-<ticket>`).
fn sender(headers: Option<&async_nats::HeaderMap>) -> Option<(u64, u64)> {
    let id = headers?.get(async_nats::header::NATS_MESSAGE_ID)?;
    crate::wire::id::parse_entry(id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_message() {
        assert_eq!(hide_userinfo("nats://u:secret@h:4222"), "nats://***@h:4222");
        assert_eq!(hide_userinfo("token@h"), "***@h");
        assert_eq!(hide_userinfo("tls://h:4222"), "tls://h:4222");
        let err = NatsConfig::new("http://u:secret@h", "s").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let ok = NatsConfig::new("nats://u:secret@h:4333", "s").unwrap();
        assert_eq!(ok.shown, "nats://h:4333");
        assert!(!format!("{ok:?}").contains("secret"));
    }

    #[test]
    fn an_invalid_url_error_hides_a_password_holding_a_slash() {
        for url in [
            "nats://u:se/cret@[::1",
            "http://u:se/cret@h",
            "u:se/cret@h:x",
        ] {
            let err = NatsConfig::new(url, "s").unwrap_err();
            assert!(!err.to_string().contains("se/cret"), "{err}");
            assert!(!format!("{err:?}").contains("se/cret"), "{err:?}");
        }
    }

    #[test]
    fn a_stream_name_is_one_subject_token() {
        assert!(NatsConfig::new("127.0.0.1", "app-events_1").is_ok());
        for bad in ["", "a.b", "a b", "a*", ">"] {
            assert!(NatsConfig::new("127.0.0.1", bad).is_err(), "{bad:?}");
        }
    }
}
