//! The follower task: reads the stream with an ordered consumer (no acks, flow kept by the
//! client) and hands every event to the fan-out; resumes after the last message read when
//! NATS comes back, starts over when the stream's epoch changed, and reports a gap when the
//! stream sequence jumps (messages trimmed before they were read).

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::record::{decode_batch, entries};
use super::{epoch, sender, NatsLog, BACKOFF_CAP, BACKOFF_START};
use crate::engine::{Backoff, ResetReason, Senders, Sink};
use crate::wire::EventId;

/// How often the follower checks the stream's creation time, to notice a stream deleted
/// and made again while it was connected.
const EPOCH_CHECK: Duration = Duration::from_secs(1);

/// Where the follower is: the stream's epoch and the last message read.
#[derive(Clone, Copy)]
struct Position {
    epoch: u64,
    seq: u64,
}

pub(super) async fn run(log: &NatsLog, js: &Context, sink: &Weak<dyn Sink>) {
    let mut stop = log.ctl.stop.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    let mut position: Option<Position> = None;
    let mut senders = Senders::default();
    while !log.ctl.stopping(sink) {
        let (stream, epoch) = match log.stream(js).await {
            Ok(ok) => ok,
            Err(err) => {
                log.failed("follower", &err);
                backoff.wait(&mut stop).await;
                continue;
            }
        };
        let mut at = match resume(log, sink, &stream, epoch, position).await {
            Ok(Some(at)) => at,
            Ok(None) => return,
            Err(err) => {
                log.failed("follower", &err);
                backoff.wait(&mut stop).await;
                continue;
            }
        };
        if at.epoch != position.map_or(at.epoch, |p| p.epoch) {
            senders = Senders::default();
        }
        backoff.reset();
        let ended = follow(log, sink, stream, &mut at, &mut senders, &mut stop).await;
        position = Some(at);
        match ended {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => log.failed("follower", &err),
        }
        backoff.wait(&mut stop).await;
    }
}

/// Where to read from in the stream of epoch `epoch`: after the last message read when the
/// epoch is unchanged; otherwise after the newest message (first start) or from the
/// beginning (a new epoch), telling the fan-out. `None` when the broadcaster is gone.
async fn resume(
    log: &NatsLog,
    sink: &Weak<dyn Sink>,
    stream: &Stream,
    epoch: u64,
    previous: Option<Position>,
) -> Result<Option<Position>, async_nats::Error> {
    let start = match previous {
        Some(p) if p.epoch == epoch => return Ok(Some(p)),
        Some(_) => {
            log.ctl.counters.epoch_changed();
            tracing::warn!(
                stream = log.config.stream,
                "sse nats engine: the stream's epoch changed (NATS restarted empty or the \
                 stream was made again); ids from before get a reset"
            );
            EventId::entry(epoch, 0, 0)
        }
        None => newest(stream, epoch).await?,
    };
    let Some(sink) = sink.upgrade() else {
        return Ok(None);
    };
    sink.start_epoch(start);
    Ok(Some(Position {
        epoch,
        seq: start.position().0,
    }))
}

/// The id of the newest event in the stream (of epoch `epoch`), or `<epoch>-0-0`.
async fn newest(stream: &Stream, epoch: u64) -> Result<EventId, async_nats::Error> {
    let last = stream.cached_info().state.last_sequence;
    if last == 0 {
        return Ok(EventId::entry(epoch, 0, 0));
    }
    let count = match stream.get_raw_message(last).await {
        Ok(message) => decode_batch(&message.payload).map_or(0, |r| r.len()),
        // Trimmed or deleted meanwhile: nothing of it can be asked for anyway.
        Err(_) => 0,
    };
    let n = u64::try_from(count.saturating_sub(1)).unwrap_or(0);
    Ok(EventId::entry(epoch, last, n))
}

/// Reads and delivers until NATS fails or the epoch changes (`Ok(false)`: start again) or
/// the broadcaster stops (`Ok(true)`).
async fn follow(
    log: &NatsLog,
    sink: &Weak<dyn Sink>,
    mut stream: Stream,
    at: &mut Position,
    senders: &mut Senders,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, async_nats::Error> {
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: log.subject.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: at.seq + 1,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut connections = log.connections.subscribe();
    connections.mark_unchanged();
    let mut check = tokio::time::interval(EPOCH_CHECK);
    check.tick().await;
    // Where the follower was at the last check: behind the stream and not moving since
    // means the consumer is stuck (a safety net; reconnections are seen at once).
    let mut checked_at = at.seq;
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = connections.changed() => return Ok(false),
            _ = check.tick() => {
                let info = stream.info().await?;
                let last = info.state.last_sequence;
                log.known_last.fetch_max(last, Ordering::Relaxed);
                if epoch(info) != at.epoch {
                    return Ok(false);
                }
                if last > at.seq && checked_at == at.seq {
                    tracing::info!(stream = log.config.stream, "sse nats engine: the consumer stalled; making a new one");
                    return Ok(false);
                }
                checked_at = at.seq;
                continue;
            }
            _ = stop.changed() => return Ok(true),
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(err)) => return Err(err.into()),
            None => return Ok(false),
        };
        let Some(sink) = sink.upgrade() else {
            return Ok(true);
        };
        let seq = message.info()?.stream_sequence;
        if seq <= at.seq {
            continue;
        }
        // Stream sequences are consecutive: a jump means messages trimmed unread.
        if seq > at.seq + 1 {
            log.ctl.counters.gap();
            sink.gap(ResetReason::Trimmed);
        }
        at.seq = seq;
        log.known_last.fetch_max(seq, Ordering::Relaxed);
        if sender(message.headers.as_ref()).is_some_and(|(i, t)| senders.is_repeat(i, t)) {
            tracing::debug!(seq, "sse nats engine: skipped a repeated message");
            continue;
        }
        deliver(log, &*sink, at, &message.payload);
    }
}

/// Hands the events of message `at.seq` to the fan-out, skipping malformed ones.
fn deliver(log: &NatsLog, sink: &dyn Sink, at: &Position, payload: &[u8]) {
    let Some(records) = decode_batch(payload) else {
        log.ctl.counters.failed();
        tracing::warn!(
            stream = log.config.stream,
            seq = at.seq,
            "sse nats engine: skipped a message that is not one of ours"
        );
        return;
    };
    let (entries, malformed) = entries(at.epoch, at.seq, records, None);
    if malformed > 0 {
        log.ctl.counters.failures(malformed as u64);
        tracing::warn!(
            stream = log.config.stream,
            seq = at.seq,
            malformed,
            "sse nats engine: skipped malformed events"
        );
    }
    for entry in entries {
        sink.deliver(entry);
    }
}
