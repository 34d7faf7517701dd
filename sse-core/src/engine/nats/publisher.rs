//! The publisher task: drains the outbox into the stream in order, one message (a batch of
//! events) in flight at a time, sending it again, unchanged, until JetStream acknowledges it.

use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use bytes::Bytes;
use tokio::time::Instant;

use super::record::{encode_batch, Record};
use super::{NatsLog, BACKOFF_CAP, BACKOFF_START, BATCH, BATCH_BYTES, RESPONSE_TIMEOUT};
use crate::engine::{Backoff, Sink};

/// A message sent and not yet acknowledged. Kept as sent: a copy sent again must be the same
/// (same `Nats-Msg-Id`, same events) for JetStream to drop it if the first was stored.
struct InFlight {
    payload: Bytes,
    msg_id: String,
    /// The last ticket it holds, and how many lost events its reset marker reports.
    ticket: u64,
    lost: u64,
    events: usize,
    queued_at: Instant,
}

pub(super) async fn run(log: &NatsLog, js: &Context, sink: &Weak<dyn Sink>) {
    // However this task ends, `stopped()` resolves.
    let _done = log.ctl.finish_on_drop();
    let mut stop = log.ctl.stop.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    let mut in_flight: Option<InFlight> = None;
    let mut failing = false;
    // Fewer after a message too large for the server, until one goes through.
    let batch = if log.relaying { 1 } else { BATCH };
    let mut max_events = batch;
    loop {
        let message = match in_flight.take() {
            Some(message) => message,
            None => {
                let (batch, lost) = log.ctl.outbox.peek(max_events);
                if batch.is_empty() && lost == 0 {
                    if log.ctl.stopping(sink) {
                        return;
                    }
                    // The timeout only bounds how late a dropped broadcaster is noticed.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), log.ctl.wake.notified()).await;
                    continue;
                }
                match next_message(log, batch, lost) {
                    Some(message) => message,
                    None => continue,
                }
            }
        };
        if log.ctl.stopping(sink) && log.ctl.flush_deadline_passed() {
            abandon(log);
            return;
        }
        match send(js, log, &message).await {
            Ok(sequence) => {
                // The client's reconnection was counted when it happened.
                if std::mem::replace(&mut failing, false) {
                    tracing::info!(
                        stream = log.config.stream,
                        "sse nats engine: publishing again"
                    );
                }
                backoff.reset();
                max_events = batch;
                log.known_last.fetch_max(sequence, Ordering::Relaxed);
                log.ctl.published(message.queued_at);
                log.ctl.outbox.ack(Some(message.ticket), message.lost);
            }
            Err(Failed::TooLarge) if message.events == 1 => {
                log.ctl.counters.failed();
                log.ctl.outbox.count_dropped(1);
                tracing::error!(
                    stream = log.config.stream,
                    "sse nats engine: an event larger than the server's max_payload was dropped"
                );
                log.ctl.outbox.ack(Some(message.ticket), message.lost);
            }
            Err(Failed::TooLarge) => {
                // Never sent: the next try takes fewer events.
                log.ctl.counters.failed();
                max_events = (message.events / 2).max(1);
            }
            Err(Failed::Other(err)) => {
                failing = true;
                log.failed("publisher", &err);
                if give_up(log, sink) {
                    return;
                }
                in_flight = Some(message);
                backoff.wait(&mut stop).await;
            }
        }
    }
}

/// The next message from what the outbox holds: as many of `batch` as fit, after a reset
/// marker if events were lost. `None` (counted) if it cannot be encoded.
fn next_message(
    log: &NatsLog,
    batch: Vec<crate::engine::outbox::Outgoing<Record>>,
    lost: u64,
) -> Option<InFlight> {
    let marker = (lost > 0).then(|| {
        Record::reset(format!(
            "{lost} events were lost while the event store was unreachable"
        ))
    });
    let mut records: Vec<&Record> = marker.iter().collect();
    let mut bytes = 0;
    let mut ticket = 0;
    let mut queued_at = Instant::now();
    for out in &batch {
        bytes += out.item.size();
        if bytes > BATCH_BYTES && records.len() > usize::from(marker.is_some()) {
            break;
        }
        if ticket == 0 {
            queued_at = out.queued_at;
        }
        ticket = out.ticket;
        records.push(&out.item);
    }
    let events = records.len() - usize::from(marker.is_some());
    match encode_batch(&records) {
        Ok(payload) => Some(InFlight {
            payload,
            // Ticket 0 (a marker alone): never taken for a repeat.
            msg_id: format!("{}-{ticket}", log.instance),
            ticket,
            lost,
            events,
            queued_at,
        }),
        Err(err) => {
            log.failed("publisher", &err);
            log.ctl.outbox.count_dropped(events as u64);
            log.ctl.outbox.ack((ticket > 0).then_some(ticket), lost);
            None
        }
    }
}

enum Failed {
    TooLarge,
    Other(async_nats::Error),
}

/// Publishes `message` and waits for its ack: the stream sequence it got (or had, for a
/// copy JetStream recognised).
async fn send(js: &Context, log: &NatsLog, message: &InFlight) -> Result<u64, Failed> {
    let publish = PublishMessage::build()
        .payload(message.payload.clone())
        .message_id(&message.msg_id);
    let ack = match js.send_publish(log.subject.clone(), publish).await {
        Ok(ack) => ack,
        Err(err) if err.kind() == PublishErrorKind::MaxPayloadExceeded => {
            return Err(Failed::TooLarge)
        }
        Err(err) => return Err(Failed::Other(err.into())),
    };
    match tokio::time::timeout(RESPONSE_TIMEOUT, ack.into_future()).await {
        Ok(Ok(ack)) => Ok(ack.sequence),
        Ok(Err(err)) => {
            if err.kind() == PublishErrorKind::StreamNotFound {
                // The server restarted empty or the stream was deleted: make it again.
                if let Err(err) = log.stream(js).await {
                    return Err(Failed::Other(err));
                }
            }
            Err(Failed::Other(err.into()))
        }
        Err(elapsed) => Err(Failed::Other(elapsed.into())),
    }
}

/// Whether to stop retrying: the broadcaster is gone, or it stopped and its flush deadline
/// passed. What is left then is abandoned.
fn give_up(log: &NatsLog, sink: &Weak<dyn Sink>) -> bool {
    let dropped = sink.strong_count() == 0;
    if dropped || (*log.ctl.stop.borrow() && log.ctl.flush_deadline_passed()) {
        abandon(log);
        return true;
    }
    false
}

/// Logs and counts what is left in the outbox when the engine stops without having sent it.
fn abandon(log: &NatsLog) {
    let left = log.ctl.outbox.abandon();
    if left > 0 {
        tracing::error!(
            events = left,
            stream = log.config.stream,
            "sse nats engine stopped with NATS unreachable; queued events not published"
        );
    }
}
