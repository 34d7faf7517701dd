//! `Last-Event-ID` replay from the stream, for ids older than the local history: a task on
//! the engine's thread with a connection of its own (a large reply never delays `XADD`),
//! serving one page per request, each encoded once and kept briefly for the clients that
//! reconnect together with the same id.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{frame, sender, RedisLog, RESPONSE_TIMEOUT};
use crate::log::{reason, ReplayError, ReplayPage, Senders, Sink, DEDUPE_WINDOW};
use crate::wire::EventId;

/// Requests waiting for the replay task; past this, a replay is answered with a reset.
pub(super) const QUEUE: usize = 1024;
/// Pages kept for clients that ask for the same one (after a deploy, every client reconnects
/// with the same id).
const CACHE_PAGES: usize = 64;
const CACHE_FOR: Duration = Duration::from_secs(1);

/// One page asked for by a subscriber's stream.
pub(super) struct Request {
    pub(super) key: PageKey,
    /// `None` for a first page; else the previous page's senders.
    pub(super) seen: Option<Senders>,
    pub(super) reply: oneshot::Sender<Result<ReplayPage, ReplayError>>,
}

/// Which page: after an entry, up to another, at most `max` entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct PageKey {
    pub(super) after: EventId,
    pub(super) upto: EventId,
    pub(super) max: usize,
}

pub(super) async fn run(
    log: Arc<RedisLog>,
    sink: Weak<dyn Sink>,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut stop = log.ctl.stop.subscribe();
    let mut conn: Option<MultiplexedConnection> = None;
    let mut cache: VecDeque<(PageKey, Instant, Arc<ReplayPage>)> = VecDeque::new();
    loop {
        let request = tokio::select! {
            request = requests.recv() => request,
            _ = stop.changed() => None,
        };
        let Some(request) = request else {
            return;
        };
        if log.ctl.stopping(&sink) {
            return;
        }
        // Only first pages are shared: later ones depend on what the client's replay saw.
        let first = request.seen.is_none();
        cache.retain(|(_, at, _)| at.elapsed() < CACHE_FOR);
        if let Some((_, _, page)) = cache
            .iter()
            .find(|(key, _, _)| first && *key == request.key)
        {
            let _ = request.reply.send(Ok(ReplayPage::clone(page)));
            continue;
        }
        if conn.is_none() {
            match log.connect().await {
                Ok((c, _)) => conn = Some(c),
                Err(err) => log.failed("replay", &err),
            }
        }
        let Some(c) = &mut conn else {
            let _ = request.reply.send(Err(reason::UNREACHABLE));
            continue;
        };
        let fetched = fetch(&log, c, request.key, request.seen);
        let result = match tokio::time::timeout(RESPONSE_TIMEOUT, fetched).await {
            Ok(Ok(result)) => result,
            Ok(Err(err)) => {
                log.failed("replay", &err);
                conn = None;
                Err(reason::UNREACHABLE)
            }
            Err(_) => {
                log.failed("replay", &"timed out");
                conn = None;
                Err(reason::UNREACHABLE)
            }
        };
        if let (Ok(page), true) = (&result, first) {
            if cache.len() == CACHE_PAGES {
                cache.pop_front();
            }
            cache.push_back((request.key, Instant::now(), Arc::new(page.clone())));
        }
        // The stream may have ended meanwhile: nobody to answer.
        let _ = request.reply.send(result);
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
    let (Some((ams, an)), Some((ums, un))) = (key.after.entry_parts(), key.upto.entry_parts())
    else {
        return Ok(Err(reason::STALE));
    };
    let after = format!("{ams}-{an}");
    let page: Option<StreamRangeReply> = PAGE
        .key(&log.key)
        .arg(&after)
        .arg(format!("{ums}-{un}"))
        .arg(key.max)
        .invoke_async(conn)
        .await?;
    let Some(page) = page else {
        return Ok(Err(reason::TOO_OLD));
    };
    let mut senders = match seen {
        Some(seen) => seen,
        None => senders_up_to(log, conn, &after).await?,
    };
    let epoch = key.after.epoch();
    let reached = page
        .ids
        .last()
        .and_then(|e| crate::wire::id::parse_entry(&e.id))
        .map(|(ms, n)| EventId::entry(epoch, ms, n));
    let frames = page
        .ids
        .iter()
        .filter(|e| !sender(e).is_some_and(|(i, t)| senders.is_repeat(i, t)))
        .filter_map(|e| frame(epoch, e, log.format))
        .collect();
    Ok(Ok(ReplayPage {
        frames,
        reached,
        seen: senders,
    }))
}

/// Entries after `ARGV[1]` up to `ARGV[2]`, at most `ARGV[3]`; nothing (nil) when `ARGV[1]`
/// is no longer in the stream. `0-0` (a stream that was empty) is never an entry.
static PAGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if ARGV[1] ~= '0-0' and #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then
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
