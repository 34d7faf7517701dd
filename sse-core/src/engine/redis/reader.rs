//! The reader task: follows the stream with `XREAD BLOCK` and hands every entry to the
//! fan-out, resuming after the last entry read when Redis comes back and starting over when
//! the stream's epoch changed.

use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{decode, sender, RedisLog, BACKOFF_CAP, BACKOFF_START, BATCH};
use crate::engine::{Backoff, ResetReason, Senders, Sink};
use crate::wire::id::parse_entry;
use crate::wire::EventId;

/// How long one `XREAD` blocks: also how late the reader notices a dropped broadcaster.
const BLOCK: Duration = Duration::from_secs(1);
/// How often the reader checks the epoch key, to notice a flush without a restart.
const EPOCH_CHECK: Duration = Duration::from_secs(1);

/// Where the reader is: the stream's epoch, the last entry read and that entry's ordinal in
/// the stream (the stream's `entries-added` count when it was added; `None` when Redis does
/// not report that count, before 7.0: trimming goes unnoticed then).
struct Position {
    epoch: u64,
    last: String,
    ordinal: Option<u64>,
}

pub(super) async fn run(log: Arc<RedisLog>, sink: Weak<dyn Sink>) {
    let mut stop = log.ctl.stop.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    let mut position: Option<Position> = None;
    let mut senders = Senders::default();
    while !log.ctl.stopping(&sink) {
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
    let (last, ordinal) = match previous {
        Some(p) if p.epoch == epoch => return Ok(Some(p)),
        Some(_) => {
            log.ctl.counters.epoch_changed();
            tracing::warn!(
                stream = log.key,
                "sse redis engine: the stream's epoch changed (Redis restarted empty or was \
                 flushed); ids from before get a reset"
            );
            ("0-0".to_owned(), Some(0))
        }
        None => newest(log, conn).await?,
    };
    let Some(sink) = sink.upgrade() else {
        return Ok(None);
    };
    let (ms, n) = parse_entry(&last).unwrap_or((0, 0));
    sink.start_epoch(EventId::entry(epoch, ms, n));
    Ok(Some(Position {
        epoch,
        last,
        ordinal,
    }))
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
        let read = if more {
            tokio::select! {
                read = read_batch(log, conn, &at.last) => read,
                _ = stop.changed() => return true,
            }
        } else {
            let woken = tokio::select! {
                woken = wait_for_entries(log, conn, &at.last) => woken,
                _ = stop.changed() => return true,
            };
            match woken {
                Ok(Woken::Timeout) => continue,
                Ok(Woken::Entries(entries)) => Ok(Batch::complete(entries)),
                // The entry read last is gone: what followed it may have been trimmed
                // before it was read, which only the counts tell.
                Ok(Woken::LastGone) => tokio::select! {
                    read = read_batch(log, conn, &at.last) => read,
                    _ = stop.changed() => return true,
                },
                Err(err) => Err(err),
            }
        };
        let Some(sink) = sink.upgrade() else {
            return true;
        };
        match read {
            Ok(batch) => {
                more = batch.entries.len() == BATCH;
                if batch.advance(&mut at.ordinal, more) {
                    log.ctl.counters.gap();
                    sink.gap(ResetReason::Trimmed);
                }
                deliver(log, &*sink, at, senders, batch.entries);
            }
            Err(err) => {
                log.failed("reader", &err);
                return false;
            }
        }
    }
}

/// What a wait for new entries found.
enum Woken {
    /// Nothing within [`BLOCK`].
    Timeout,
    /// The entries after the last one read, none of them lost: that entry was still in the
    /// stream after they were read, and trimming removes the oldest entries first.
    Entries(Vec<StreamId>),
    /// New entries, but the last one read is gone (trimmed, or the stream was empty):
    /// they are read again with the counts that tell a gap.
    LastGone,
}

/// Blocks up to [`BLOCK`] until the stream has entries after `last`, and reads them.
///
/// One round trip for each wake-up, which is one event when the reader keeps up: the
/// blocking `XREAD` and, pipelined behind it (Redis runs it once the `XREAD` has answered),
/// an `XRANGE` of `last` alone. If `last` is still in the stream after the read, nothing
/// after it was trimmed before (trimming removes the oldest entries first), so the entries
/// are complete without the counts that [`read_batch`] reads in a script. (`XDEL` of an
/// entry by someone else is not a gap: it was deleted on purpose.)
async fn wait_for_entries(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
    last: &str,
) -> redis::RedisResult<Woken> {
    let (read, still): (Option<StreamReadReply>, StreamRangeReply) = redis::pipe()
        .cmd("XREAD")
        .arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&log.key)
        .arg(last)
        .cmd("XRANGE")
        .arg(&log.key)
        .arg(last)
        .arg(last)
        .query_async(conn)
        .await?;
    let entries: Vec<StreamId> = read
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect();
    Ok(if entries.is_empty() {
        Woken::Timeout
    } else if still.ids.is_empty() {
        Woken::LastGone
    } else {
        Woken::Entries(entries)
    })
}

/// The stream's `entries-added` count and length (`-1, 0` before Redis 7.0; `0, 0` when the
/// stream does not exist), for the scripts below.
const COUNTS: &str = r"
local function counts(key)
  if redis.call('EXISTS', key) == 0 then return 0, 0 end
  local info = redis.call('XINFO', 'STREAM', key)
  local added, length = -1, 0
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then length = info[i + 1] end
  end
  return added, length
end
";

/// Up to [`BATCH`] entries after `ARGV[1]`, with the stream's counts read at the same instant.
const READ_BATCH: &str = r"
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local added, length = counts(KEYS[1])
return {added, length, entries}
";

/// The newest entry's id (`0-0` if none) and its ordinal.
const NEWEST: &str = r"
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local added, length = counts(KEYS[1])
local id = '0-0'
if #newest > 0 then id = newest[1][1] end
return {added, id}
";

/// One read: entries and the stream's counts at the same instant.
struct Batch {
    /// Entries ever added to the stream; `None` before Redis 7.0.
    added: Option<u64>,
    /// Entries in the stream now.
    length: u64,
    entries: Vec<StreamId>,
    /// Read without the counts, known to start right after the last entry read.
    complete: bool,
}

impl Batch {
    fn complete(entries: Vec<StreamId>) -> Self {
        Self {
            added: None,
            length: 0,
            entries,
            complete: true,
        }
    }

    /// Moves `ordinal` (the last entry read) past this batch; `true` when entries after it
    /// were trimmed before they were read. Trimming (`MAXLEN`) removes the oldest entries
    /// first, so `added - length` entries are gone and they are the ordinals up to that
    /// count: if the entry after `ordinal` is among them, it was lost. (`XDEL` by someone
    /// else makes the count larger, never smaller: a needless reset, never a silent gap.)
    fn advance(&self, ordinal: &mut Option<u64>, more: bool) -> bool {
        if self.complete {
            // Read without the counts, known to follow the last entry: ordinals go on.
            *ordinal = ordinal.map(|last| last + self.entries.len() as u64);
            return false;
        }
        let (Some(added), Some(last)) = (self.added, *ordinal) else {
            *ordinal = self.added.filter(|_| !more);
            return false;
        };
        let removed = added.saturating_sub(self.length);
        let gap = removed > last;
        let read = self.entries.len() as u64;
        *ordinal = Some(if more {
            removed.max(last) + read
        } else {
            // The batch reached the stream's end: its last entry is the newest one.
            added
        });
        gap
    }
}

/// The scripts, hashed once.
static SCRIPTS: LazyLock<(redis::Script, redis::Script)> = LazyLock::new(|| {
    let script = |body| redis::Script::new(&format!("{COUNTS}{body}"));
    (script(READ_BATCH), script(NEWEST))
});

async fn read_batch(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
    last: &str,
) -> redis::RedisResult<Batch> {
    let (added, length, range): (i64, u64, StreamRangeReply) = SCRIPTS
        .0
        .key(&log.key)
        .arg(last)
        .arg(BATCH)
        .invoke_async(conn)
        .await?;
    Ok(Batch {
        added: u64::try_from(added).ok(),
        length,
        entries: range.ids,
        complete: false,
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
        } else if let Some(entry) = decode(at.epoch, &entry) {
            sink.deliver(entry);
        } else {
            log.ctl.counters.failed();
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

/// The id of the stream's newest entry (or `0-0`) and its ordinal.
async fn newest(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<(String, Option<u64>)> {
    let (added, id): (i64, String) = SCRIPTS.1.key(&log.key).invoke_async(conn).await?;
    Ok((id, u64::try_from(added).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(added: Option<u64>, length: u64, read: usize) -> Batch {
        let entry = StreamId {
            id: "1-0".to_owned(),
            ..StreamId::default()
        };
        Batch {
            added,
            length,
            entries: vec![entry; read],
            complete: false,
        }
    }

    #[test]
    fn entries_trimmed_after_the_last_one_read_are_a_gap() {
        // Read up to the 10th entry; 600 more were added and all but the newest 100 trimmed.
        let mut ordinal = Some(10);
        assert!(batch(Some(610), 100, 100).advance(&mut ordinal, false));
        assert_eq!(ordinal, Some(610));
    }

    #[test]
    fn trimming_only_what_was_read_is_no_gap() {
        let mut ordinal = Some(10);
        // Entries 1..=10 are gone, 11..=15 remain and are read now.
        assert!(!batch(Some(15), 5, 5).advance(&mut ordinal, false));
        assert_eq!(ordinal, Some(15));
    }

    #[test]
    fn a_full_batch_counts_forward_from_where_it_started() {
        let mut ordinal = Some(10);
        assert!(!batch(Some(2000), 1990, BATCH).advance(&mut ordinal, true));
        assert_eq!(ordinal, Some(10 + BATCH as u64));
        // After a gap the batch starts at the oldest entry left.
        let mut ordinal = Some(10);
        assert!(batch(Some(2000), 1000, BATCH).advance(&mut ordinal, true));
        assert_eq!(ordinal, Some(1000 + BATCH as u64));
    }

    #[test]
    fn entries_read_after_one_still_there_count_on_from_it() {
        let entries = vec![StreamId::default(); 3];
        let mut ordinal = Some(10);
        assert!(!Batch::complete(entries.clone()).advance(&mut ordinal, false));
        assert_eq!(ordinal, Some(13));
        let mut ordinal = None;
        assert!(!Batch::complete(entries).advance(&mut ordinal, false));
        assert_eq!(ordinal, None);
    }

    #[test]
    fn without_the_count_no_gap_is_claimed() {
        let mut ordinal = None;
        assert!(!batch(None, 5, 5).advance(&mut ordinal, false));
        assert_eq!(ordinal, None);
    }
}
