//! `Last-Event-ID` replay from the stream, for ids older than the local history: the pages
//! the engine's replay task ([`pages`](crate::engine::pages)) serves, read through a connection
//! of its own (a large reply never delays `XADD`), each encoded once.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;

use super::{decode, sender, RedisLog, RESPONSE_TIMEOUT};
use crate::engine::pages::{PageKey, PageSource};
use crate::engine::{ReplayError, ReplayFrom, ReplayPage, ResetReason, Senders, DEDUPE_WINDOW};
use crate::wire::EventId;

impl PageSource for RedisLog {
    type Conn = MultiplexedConnection;
    type Error = redis::RedisError;
    const TIMEOUT: Duration = RESPONSE_TIMEOUT;
    const CONNECT_FOR_FIRST_PAGE: bool = false;

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        Ok(RedisLog::connect(self).await?.0)
    }

    async fn fetch(
        &self,
        conn: &mut MultiplexedConnection,
        key: PageKey,
        seen: Option<Senders>,
    ) -> redis::RedisResult<Result<ReplayPage, ReplayError>> {
        fetch(self, conn, key, seen).await
    }

    fn failed(&self, err: &dyn std::fmt::Display) {
        RedisLog::failed(self, "replay", err);
    }
}

/// One page, read with a check that `after` is still in the stream, in one script: trimming
/// removes the oldest entries first, so while `after` is there every entry after it is too,
/// and the page has no hole. This holds for every page (each starts after the previous one's
/// last entry), however long the client took between them. A first page then reads the
/// entries just before `after` to tell repeats apart.
async fn fetch(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
    key: PageKey,
    seen: Option<Senders>,
) -> redis::RedisResult<Result<ReplayPage, ReplayError>> {
    // `0-0` is never an entry: the script starts at the oldest one without a check.
    let from = match key.from {
        ReplayFrom::After(after) => after,
        ReplayFrom::Oldest => EventId::entry(key.upto.epoch(), 0, 0),
    };
    let (Some((ams, an)), Some((ums, un))) = (from.entry_parts(), key.upto.entry_parts()) else {
        return Ok(Err(ResetReason::Stale));
    };
    let after = format!("{ams}-{an}");
    let oldest = u8::from(key.from == ReplayFrom::Oldest);
    let page: Option<StreamRangeReply> = PAGE
        .key(&log.key)
        .arg(&after)
        .arg(format!("{ums}-{un}"))
        .arg(key.max)
        .arg(oldest)
        .invoke_async(conn)
        .await?;
    let Some(page) = page else {
        return Ok(Err(ResetReason::TooOld));
    };
    let mut senders = match seen {
        Some(seen) => seen,
        // Nothing before the oldest entry to tell repeats of apart.
        None if key.from == ReplayFrom::Oldest => Senders::default(),
        None => senders_up_to(log, conn, &after).await?,
    };
    let epoch = from.epoch();
    let reached = page
        .ids
        .last()
        .and_then(|e| crate::wire::id::parse_entry(&e.id))
        .map(|(ms, n)| EventId::entry(epoch, ms, n));
    let entries = page
        .ids
        .iter()
        .filter(|e| !sender(e).is_some_and(|(i, t)| senders.is_repeat(i, t)))
        .filter_map(|e| decode(epoch, e))
        .collect();
    Ok(Ok(ReplayPage {
        entries,
        reached,
        seen: senders,
    }))
}

/// Entries after `ARGV[1]` up to `ARGV[2]`, at most `ARGV[3]`; nothing (nil) when `ARGV[1]`
/// is no longer in the stream. `0-0` is never an entry: from the oldest entry when `ARGV[4]`
/// is 1; else it is the id of a stream that was empty, and nothing (nil) when any entry was
/// removed since (fewer entries than were ever added; `entries-added` is Redis 7's).
static PAGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if ARGV[1] == '0-0' then
  if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[1])
    local added, length
    for i = 1, #info, 2 do
      if info[i] == 'entries-added' then added = info[i + 1] end
      if info[i] == 'length' then length = info[i + 1] end
    end
    if added and length and added > length then
      return false
    end
  end
elseif #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then
  return false
end
return redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'COUNT', ARGV[3])
",
    )
});

/// The senders of the entries just before `after` (up to and including it), for a first
/// page.
async fn senders_up_to(
    log: &RedisLog,
    conn: &mut MultiplexedConnection,
    after: &str,
) -> redis::RedisResult<Senders> {
    let before: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&log.key)
        .arg(after)
        .arg("-")
        .arg("COUNT")
        .arg(DEDUPE_WINDOW)
        .query_async(conn)
        .await?;
    let mut senders = Senders::default();
    for entry in before.ids.iter().rev() {
        if let Some((instance, ticket)) = sender(entry) {
            senders.is_repeat(instance, ticket);
        }
    }
    Ok(senders)
}
