//! The publisher task: drains the outbox into the stream in order, reconnecting with backoff
//! and sending again what Redis did not acknowledge.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::{RedisLog, BACKOFF_CAP, BACKOFF_START, BATCH};
use crate::engine::{Backoff, Sink};

pub(super) async fn run(log: Arc<RedisLog>, sink: Weak<dyn Sink>) {
    // However this task ends, `stopped()` resolves.
    let _done = log.ctl.finish_on_drop();
    let mut stop = log.ctl.stop.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    let mut connected_before = false;
    loop {
        let mut conn = match log.connect().await {
            Ok((conn, _)) => conn,
            Err(err) => {
                log.failed("publisher", &err);
                if give_up(&log, &sink) {
                    return;
                }
                backoff.wait(&mut stop).await;
                continue;
            }
        };
        if std::mem::replace(&mut connected_before, true) {
            log.ctl.counters.reconnected();
            tracing::info!(stream = log.key, "sse redis engine: publisher reconnected");
        }
        backoff.reset();
        match drain(&log, &sink, &mut conn).await {
            Drained::Stopped => return,
            Drained::Failed(err) => {
                log.failed("publisher", &err);
                if give_up(&log, &sink) {
                    return;
                }
            }
        }
    }
}

/// Whether to stop retrying: the broadcaster is gone, or it stopped and the outbox is empty
/// or its flush deadline passed. What is left then is abandoned.
fn give_up(log: &RedisLog, sink: &Weak<dyn Sink>) -> bool {
    let stopped = *log.ctl.stop.borrow();
    let dropped = sink.strong_count() == 0;
    if !stopped && !dropped {
        return false;
    }
    if dropped || log.ctl.outbox.len() == 0 || log.ctl.flush_deadline_passed() {
        abandon(log);
        return true;
    }
    false
}

enum Drained {
    Stopped,
    Failed(redis::RedisError),
}

/// Sends batches from the outbox until stopped (and flushed, or past the flush deadline) or
/// Redis fails.
async fn drain(log: &RedisLog, sink: &Weak<dyn Sink>, conn: &mut MultiplexedConnection) -> Drained {
    loop {
        let (batch, lost) = log.ctl.outbox.peek(BATCH);
        if batch.is_empty() && lost == 0 {
            if log.ctl.stopping(sink) {
                return Drained::Stopped;
            }
            // The timeout only bounds how late a dropped broadcaster is noticed.
            let _ = tokio::time::timeout(Duration::from_secs(1), log.ctl.wake.notified()).await;
            continue;
        }
        if log.ctl.stopping(sink) && log.ctl.flush_deadline_passed() {
            abandon(log);
            return Drained::Stopped;
        }
        let mut pipe = redis::pipe();
        if lost > 0 {
            let reason = format!("{lost} events were lost while the event store was unreachable");
            xadd(log, &mut pipe, &[("r", reason)], 0);
        }
        for out in &batch {
            xadd(log, &mut pipe, &out.item, out.ticket);
        }
        if let Err(err) = pipe.query_async::<()>(conn).await {
            return Drained::Failed(err);
        }
        if let Some(oldest) = batch.first() {
            log.ctl.published(oldest.queued_at);
        }
        log.ctl.outbox.ack(batch.last().map(|o| o.ticket), lost);
    }
}

fn xadd(
    log: &RedisLog,
    pipe: &mut redis::Pipeline,
    fields: &[(&'static str, String)],
    ticket: u64,
) {
    let cmd = pipe
        .cmd("XADD")
        .arg(&log.key)
        .arg("MAXLEN")
        .arg("~")
        .arg(log.maxlen)
        .arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(v.as_str());
    }
    // Who sent it, and its place in that sender's order: a batch sent again after a lost
    // reply is recognised by the readers instead of being delivered twice.
    cmd.arg("i").arg(format!("{}-{ticket}", log.instance));
    cmd.ignore();
}

/// Logs and counts what is left in the outbox when the engine stops without having sent it.
fn abandon(log: &RedisLog) {
    let left = log.ctl.outbox.abandon();
    if left > 0 {
        tracing::error!(
            events = left,
            stream = log.key,
            "sse redis engine stopped with Redis unreachable; queued events not published"
        );
    }
}
