//! The reader task: follows the stream with `XREAD BLOCK` and hands every entry to the
//! fan-out, resuming after the last entry read when Redis comes back and starting over when
//! the stream's epoch changed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{frame, sender, RedisLog, BACKOFF_CAP, BACKOFF_START, BATCH};
use crate::log::{Backoff, Senders, Sink};
use crate::wire::{parse_entry, EventId};

/// How long one `XREAD` blocks: also how late the reader notices a dropped broadcaster.
const BLOCK: Duration = Duration::from_secs(1);
/// How often the reader checks the epoch key, to notice a flush without a restart.
const EPOCH_CHECK: Duration = Duration::from_secs(1);

/// Where the reader is: the stream's epoch and the last entry read.
struct Position {
    epoch: u64,
    last: String,
}

pub(super) async fn run(log: Arc<RedisLog>, sink: Weak<dyn Sink>) {
    let mut stop = log.stop.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    let mut position: Option<Position> = None;
    let mut senders = Senders::default();
    while !log.stopping(&sink) {
        let (mut conn, epoch) = match log.connect().await {
            Ok(ok) => ok,
            Err(err) => {
                log.failed("reader", &err);
                backoff.wait(&mut stop).await;
                continue;
            }
        };
        backoff.reset();
        let mut at = match resume(&log, &sink, &mut conn, epoch, position.take()).await {
            Ok(Some(at)) => at,
            Ok(None) => return,
            Err(err) => {
                log.failed("reader", &err);
                backoff.wait(&mut stop).await;
                continue;
            }
        };
        if follow(&log, &sink, &mut conn, &mut at, &mut senders, &mut stop).await {
            return;
        }
        position = Some(at);
        backoff.wait(&mut stop).await;
    }
}

/// Where to read from after connecting to the stream of epoch `epoch`: after the last entry
/// read when the epoch is unchanged; otherwise from the newest entry (first start) or the
/// beginning (a new epoch), telling the fan-out. `None` when the broadcaster is gone.
async fn resume(
    log: &RedisLog,
    sink: &Weak<dyn Sink>,
    conn: &mut MultiplexedConnection,
    epoch: u64,
    previous: Option<Position>,
) -> redis::RedisResult<Option<Position>> {
    let last = match previous {
        Some(p) if p.epoch == epoch => return Ok(Some(p)),
        Some(_) => {
            log.counters.epoch_changes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stream = log.key,
                "sse redis engine: the stream's epoch changed (Redis restarted empty or was \
                 flushed); ids from before get a reset"
            );
            "0-0".to_owned()
        }
        None => newest(log, conn).await?,
    };
    let Some(sink) = sink.upgrade() else {
        return Ok(None);
    };
    let (ms, n) = parse_entry(&last).unwrap_or((0, 0));
    sink.start_epoch(EventId::entry(epoch, ms, n));
    Ok(Some(Position { epoch, last }))
}

/// Reads and delivers batches until Redis fails or the epoch changes (`false`: reconnect) or
/// the broadcaster stops (`true`).
async fn follow(
    log: &RedisLog,
    sink: &Weak<dyn Sink>,
    conn: &mut MultiplexedConnection,
    at: &mut Position,
    senders: &mut Senders,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut checked = Instant::now();
    loop {
        if checked.elapsed() >= EPOCH_CHECK {
            checked = Instant::now();
            match epoch_now(log, conn).await {
                Ok(Some(now)) if now == at.epoch => {}
                // Flushed (or the key deleted): reconnecting sets and reads it anew.
                Ok(_) => return false,
                Err(err) => {
                    log.failed("reader", &err);
                    return false;
                }
            }
        }
        let read = tokio::select! {
            read = read_batch(log, conn, &at.last) => read,
            _ = stop.changed() => return true,
        };
        let Some(sink) = sink.upgrade() else {
            return true;
        };
        match read {
            Ok(entries) => deliver(log, &*sink, at, senders, entries),
            Err(err) => {
                log.failed("reader", &err);
                return false;
            }
        }
        if sink.is_closed() {
            return true;
        }
    }
}

/// Up to [`BATCH`] entries after `last`, waiting up to [`BLOCK`] for one.
async fn read_batch(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
    last: &str,
) -> redis::RedisResult<Vec<StreamId>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&log.key)
        .arg(last)
        .query_async(conn)
        .await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect())
}

/// Hands `entries` to the fan-out, skipping repeats and malformed ones.
fn deliver(
    log: &RedisLog,
    sink: &dyn Sink,
    at: &mut Position,
    senders: &mut Senders,
    entries: Vec<StreamId>,
) {
    for entry in entries {
        if sender(&entry).is_some_and(|(i, t)| senders.is_repeat(i, t)) {
            tracing::debug!(
                entry = entry.id,
                "sse redis engine: skipped a repeated entry"
            );
        } else if let Some(frame) = frame(at.epoch, &entry, log.format) {
            sink.deliver(frame);
        } else {
            log.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stream = log.key,
                entry = entry.id,
                "sse redis engine: skipped a malformed stream entry"
            );
        }
        at.last = entry.id;
    }
}

/// The epoch key's value now, `None` if it is missing or not a number.
async fn epoch_now(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<Option<u64>> {
    let value: Option<String> = redis::cmd("GET")
        .arg(&log.epoch_key)
        .query_async(conn)
        .await?;
    Ok(value.and_then(|v| v.parse().ok()))
}

/// The id of the stream's newest entry, or `0-0`.
async fn newest(log: &RedisLog, conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    let reply: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&log.key)
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
