//! `Last-Event-ID` replay from the stream, for ids older than the local history: a task on
//! the engine's thread serving one page per request with gets by sequence (several in flight
//! at once), each page encoded once and kept briefly for the clients that reconnect together
//! with the same id.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::jetstream::Context;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::record::{decode_batch, frames};
use super::{sender, NatsLog, RESPONSE_TIMEOUT};
use crate::log::{reason, ReplayError, ReplayPage, Senders, Sink};
use crate::wire::EventId;

/// Requests waiting for the replay task; past this, a replay is answered with a reset.
pub(super) const QUEUE: usize = 1024;
/// Pages kept for clients that ask for the same one (after a deploy, every client reconnects
/// with the same id).
const CACHE_PAGES: usize = 64;
const CACHE_FOR: Duration = Duration::from_secs(1);
/// Messages fetched at once.
const WINDOW: u64 = 32;
/// Messages before `after` read to tell repeats apart: a message is only ever sent again
/// right after the one before it was stored, so a few cover other instances' messages
/// between them.
const DEDUPE_MESSAGES: u64 = 16;

/// One page asked for by a subscriber's stream.
pub(super) struct Request {
    pub(super) key: PageKey,
    /// `None` for a first page; else the previous page's senders.
    pub(super) seen: Option<Senders>,
    pub(super) reply: oneshot::Sender<Result<ReplayPage, ReplayError>>,
}

/// Which page: after an event, up to another, at most `max` events.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct PageKey {
    pub(super) after: EventId,
    pub(super) upto: EventId,
    pub(super) max: usize,
}

pub(super) async fn run(
    log: &NatsLog,
    js: &Context,
    sink: &Weak<dyn Sink>,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut stop = log.ctl.stop.subscribe();
    let mut stream: Option<(Stream, u64)> = None;
    let mut cache: VecDeque<(PageKey, Instant, Arc<ReplayPage>)> = VecDeque::new();
    loop {
        let request = tokio::select! {
            request = requests.recv() => request,
            _ = stop.changed() => None,
        };
        let Some(request) = request else {
            return;
        };
        if log.ctl.stopping(sink) {
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
        // A first page asks the stream anew: its epoch may have changed since.
        if stream.is_none() || first {
            match log.stream(js).await {
                Ok(s) => stream = Some(s),
                Err(err) => {
                    log.failed("replay", &err);
                    stream = None;
                }
            }
        }
        let Some((s, epoch)) = &stream else {
            let _ = request.reply.send(Err(reason::UNREACHABLE));
            continue;
        };
        let fetched = fetch(log, s, *epoch, request.key, request.seen);
        let result = match tokio::time::timeout(RESPONSE_TIMEOUT * 2, fetched).await {
            Ok(Ok(result)) => result,
            Ok(Err(err)) => {
                log.failed("replay", &err);
                stream = None;
                Err(reason::UNREACHABLE)
            }
            Err(_) => {
                log.failed("replay", &"timed out");
                stream = None;
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

/// A message read by sequence; `None` when the stream no longer has it.
struct Read {
    seq: u64,
    sender: Option<(u64, u64)>,
    payload: bytes::Bytes,
}

async fn get(stream: &Stream, seq: u64) -> Result<Option<Read>, async_nats::Error> {
    match stream.get_raw_message(seq).await {
        Ok(message) => Ok(Some(Read {
            seq,
            sender: sender(Some(&message.headers)),
            payload: message.payload,
        })),
        Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Messages `from..=to` that the stream still has, in order.
async fn get_range(stream: &Stream, from: u64, to: u64) -> Result<Vec<Read>, async_nats::Error> {
    let reads = join_all((from..=to).map(|seq| get(stream, seq))).await;
    let mut found = Vec::with_capacity(reads.len());
    for read in reads {
        found.extend(read?);
    }
    Ok(found)
}

/// One page. A first page checks that the message holding `after` is still there before
/// anything else and reads the few messages before it to tell repeats apart.
async fn fetch(
    log: &NatsLog,
    stream: &Stream,
    epoch: u64,
    key: PageKey,
    seen: Option<Senders>,
) -> Result<Result<ReplayPage, ReplayError>, async_nats::Error> {
    let (Some((after, after_n)), Some((upto, upto_n))) =
        (key.after.entry_parts(), key.upto.entry_parts())
    else {
        return Ok(Err(reason::STALE));
    };
    if key.after.epoch() != epoch {
        return Ok(Err(reason::STALE));
    }
    let mut senders = match seen {
        Some(seen) => seen,
        None => {
            let mut senders = Senders::default();
            // Sequence 0 (a stream that was empty) is never a message.
            if after > 0 {
                let before =
                    get_range(stream, after.saturating_sub(DEDUPE_MESSAGES).max(1), after).await?;
                if before.last().is_none_or(|m| m.seq != after) {
                    return Ok(Err(reason::TOO_OLD));
                }
                for m in &before {
                    if let Some((instance, ticket)) = m.sender {
                        senders.is_repeat(instance, ticket);
                    }
                }
            }
            senders
        }
    };
    let mut page = ReplayPage::default();
    let mut seq = after;
    'read: while seq <= upto {
        let to = (seq + WINDOW - 1).min(upto);
        for m in get_range(stream, seq.max(1), to).await? {
            let within = if m.seq == after { Some(after_n) } else { None };
            // The message holding `after` was judged when it was first read.
            let repeat = within.is_none() && m.sender.is_some_and(|(i, t)| senders.is_repeat(i, t));
            let Some(records) = decode_batch(&m.payload) else {
                continue;
            };
            let (frames, _) = frames(epoch, m.seq, &records, within, log.format);
            for frame in frames {
                if m.seq == upto && frame.id.position().1 > upto_n {
                    break 'read;
                }
                page.reached = Some(frame.id);
                if !repeat {
                    page.frames.push(frame);
                }
                if page.frames.len() >= key.max {
                    break 'read;
                }
            }
        }
        seq = to + 1;
    }
    page.seen = senders;
    Ok(Ok(page))
}
