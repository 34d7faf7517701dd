//! `Last-Event-ID` replay from the stream, for ids older than the local history: the pages
//! the engine's replay task ([`pages`](crate::engine::pages)) serves, read with gets by sequence
//! (several in flight at once), each page encoded once.

use std::time::Duration;

use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::jetstream::Context;
use futures_util::future::join_all;

use super::record::{decode_batch, entries};
use super::{sender, NatsLog, RESPONSE_TIMEOUT};
use crate::engine::pages::{PageKey, PageSource};
use crate::engine::{ReplayError, ReplayFrom, ReplayPage, ResetReason, Senders};
use crate::wire::EventId;

/// Messages fetched at once.
const WINDOW: u64 = 32;
/// Messages before `after` read to tell repeats apart: a message is only ever sent again
/// right after the one before it was stored, so a few cover other instances' messages
/// between them.
const DEDUPE_MESSAGES: u64 = 16;

/// The pages of one NATS connection's stream: its handle and epoch are what a page is read
/// through, asked anew for each first page (the epoch may have changed since).
pub(super) struct Pages<'a> {
    pub(super) log: &'a NatsLog,
    pub(super) js: &'a Context,
}

impl PageSource for Pages<'_> {
    type Conn = (Stream, u64);
    type Error = async_nats::Error;
    const TIMEOUT: Duration = RESPONSE_TIMEOUT.saturating_mul(2);
    const CONNECT_FOR_FIRST_PAGE: bool = true;

    async fn connect(&self) -> Result<(Stream, u64), async_nats::Error> {
        self.log.stream(self.js).await
    }

    async fn fetch(
        &self,
        (stream, epoch): &mut (Stream, u64),
        key: PageKey,
        seen: Option<Senders>,
    ) -> Result<Result<ReplayPage, ReplayError>, async_nats::Error> {
        fetch(stream, *epoch, key, seen).await
    }

    fn failed(&self, err: &dyn std::fmt::Display) {
        self.log.failed("replay", err);
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

/// One page. Every page checks that the message holding `after` is still there, and that
/// no message from it to the last one read is missing: trimming removes the oldest messages
/// first, so a page that started after a trimmed message would silently skip what was
/// trimmed. Such a page is a reset ([`ResetReason::TooOld`]), however long the client took
/// since the previous page. A first page checks before anything else, and reads the few
/// messages before `after` to tell repeats apart. A page from the oldest message starts at
/// the stream's first sequence, with nothing before it to check or compare.
async fn fetch(
    stream: &Stream,
    epoch: u64,
    key: PageKey,
    seen: Option<Senders>,
) -> Result<Result<ReplayPage, ReplayError>, async_nats::Error> {
    let from = match key.from {
        ReplayFrom::After(after) => after,
        // Sequence 0 is never a message: no message is read as the one holding `after`.
        ReplayFrom::Oldest => EventId::entry(key.upto.epoch(), 0, 0),
    };
    let (Some((after, after_n)), Some((upto, upto_n))) =
        (from.entry_parts(), key.upto.entry_parts())
    else {
        return Ok(Err(ResetReason::Stale));
    };
    if from.epoch() != epoch {
        return Ok(Err(ResetReason::Stale));
    }
    // Where reading starts: the message holding `after` (the entries after it in that
    // batch), or the oldest message the stream holds; one trimmed under the read is missing
    // below, and a reset.
    let start = match key.from {
        ReplayFrom::After(_) => after,
        ReplayFrom::Oldest => stream.get_info().await?.state.first_sequence,
    };
    let mut senders = match seen {
        Some(seen) => seen,
        None if key.from == ReplayFrom::Oldest => Senders::default(),
        None => {
            let mut senders = Senders::default();
            // Sequence 0 (a stream that was empty) is never a message.
            if after > 0 {
                let before =
                    get_range(stream, after.saturating_sub(DEDUPE_MESSAGES).max(1), after).await?;
                if before.last().is_none_or(|m| m.seq != after) {
                    return Ok(Err(ResetReason::TooOld));
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
    let mut seq = start;
    'read: while seq <= upto {
        let from = seq.max(1);
        let to = (seq + WINDOW - 1).min(upto);
        let reads = get_range(stream, from, to).await?;
        // Sequences are consecutive: one missing was trimmed (or deleted) under the replay.
        if u64::try_from(reads.len()).ok() != Some(to + 1 - from) {
            return Ok(Err(ResetReason::TooOld));
        }
        for m in reads {
            let within = if m.seq == after { Some(after_n) } else { None };
            // The message holding `after` was judged when it was first read.
            let repeat = within.is_none() && m.sender.is_some_and(|(i, t)| senders.is_repeat(i, t));
            let Some(records) = decode_batch(&m.payload) else {
                continue;
            };
            let (entries, _) = entries(epoch, m.seq, records, within);
            for entry in entries {
                if m.seq == upto && entry.id.position().1 > upto_n {
                    break 'read;
                }
                page.reached = Some(entry.id);
                if !repeat {
                    page.entries.push(entry);
                }
                if page.entries.len() >= key.max {
                    break 'read;
                }
            }
        }
        seq = to + 1;
    }
    page.seen = senders;
    Ok(Ok(page))
}
