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
use crate::log::{reason, Backoff, Senders, Sink};
use crate::wire::id::parse_entry;
use crate::wire::EventId;

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
    // Read at once after (re)connecting: what was trimmed meanwhile is noticed then.
    let mut more = true;
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
        if !more {
            let woken = tokio::select! {
                woken = wait_for_entries(log, conn, &at.last) => woken,
                _ = stop.changed() => return true,
            };
            match woken {
                Ok(true) => {}
                Ok(false) => continue,
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
            Ok(batch) => {
                if batch.gap_after(&at.last) {
                    log.counters.gaps.fetch_add(1, Ordering::Relaxed);
                    sink.gap(reason::TRIMMED);
                }
                more = batch.entries.len() == BATCH;
                deliver(log, &*sink, at, senders, batch.entries);
            }
            Err(err) => {
                log.failed("reader", &err);
                return false;
            }
        }
    }
}

/// Blocks up to [`BLOCK`] until the stream has an entry after `last`; `false` on timeout.
async fn wait_for_entries(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
    last: &str,
) -> redis::RedisResult<bool> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&log.key)
        .arg(last)
        .query_async(conn)
        .await?;
    Ok(reply.is_some_and(|r| r.keys.iter().any(|k| !k.ids.is_empty())))
}

/// Up to [`BATCH`] entries after `last`, and the newest entry id the stream ever trimmed
/// (`max-deleted-entry-id`), read atomically: entries after `last` that are gone were
/// trimmed before this reader saw them.
const READ_BATCH: &str = r"
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local deleted = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
  end
end
return {deleted, entries}
";

/// One read: entries and the trimming mark at the same instant.
struct Batch {
    max_deleted: (u64, u64),
    entries: Vec<StreamId>,
}

impl Batch {
    /// Whether entries after `last` were trimmed unread: trimming removes the oldest first,
    /// so an entry newer than `last` and older than the first one read was lost.
    fn gap_after(&self, last: &str) -> bool {
        let last = parse_entry(last).unwrap_or((0, 0));
        let first = self.entries.first().and_then(|e| parse_entry(&e.id));
        self.max_deleted > last && first.is_none_or(|first| self.max_deleted < first)
    }
}

async fn read_batch(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
    last: &str,
) -> redis::RedisResult<Batch> {
    let (deleted, range): (String, StreamRangeReply) = redis::Script::new(READ_BATCH)
        .key(&log.key)
        .arg(last)
        .arg(BATCH)
        .invoke_async(conn)
        .await?;
    Ok(Batch {
        // A Redis older than 7.0 does not report it: no gap can be seen then.
        max_deleted: parse_entry(&deleted).unwrap_or((0, 0)),
        entries: range.ids,
    })
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
