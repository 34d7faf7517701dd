//! The relay: with a server engine (Redis, NATS) configured besides the SQL event log, one
//! instance at a time (a lease in `sse_log`, taken over when its holder stops renewing it)
//! copies the committed rows, in order, into the engine's stream, and marks them relayed once
//! the engine acknowledged them. At least once: a holder that dies after sending and before
//! marking leaves rows that the next holder sends again, as the same sender and tickets, so
//! the engine's readers deliver each once. Every instance then follows the engine's stream.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::backend::{Content, Row};
use super::follower::{trim, Wake};
use super::{SqlLog, TRIM_EVERY};
use crate::engine::{Backoff, Engine, Relayed, Sink};
use crate::wire::new_epoch;

/// How long a lease lasts without renewal: how soon another instance takes over from one
/// that died.
const LEASE: Duration = Duration::from_secs(5);
/// Rows sent to the engine at a time (at most the outbox, which must never drop them).
const BATCH: usize = 256;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

enum Step {
    /// Rows were relayed; more may be waiting.
    Relayed,
    /// Nothing to relay.
    Idle,
    /// Another instance holds the lease.
    NotHolder,
    /// The relay is stopping.
    Stopped,
}

pub(super) async fn run(log: Arc<SqlLog>, transport: Arc<dyn Engine>, sink: Weak<dyn Sink>) {
    let me = new_epoch();
    let mut stop = log.ctl.stop.subscribe();
    let mut commits = log.log.shared.commits.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    let mut wake = Wake::new(&log).await;
    let mut next_trim = Instant::now();
    let batch = BATCH.min(log.options.outbox.max(1));
    loop {
        if log.ctl.stopping(&sink) {
            break;
        }
        let step = relay_once(&log, &*transport, &sink, me, batch).await;
        match step {
            Ok(Step::Relayed) => {
                backoff.reset();
                continue;
            }
            Ok(Step::Stopped) => break,
            Ok(Step::Idle) => {
                backoff.reset();
                if Instant::now() >= next_trim {
                    next_trim = Instant::now() + TRIM_EVERY;
                    match log.pool().relayed().await {
                        Ok(relayed) => trim(&log, relayed).await,
                        Err(err) => log.failed("relay", &err),
                    }
                }
                tokio::select! {
                    _ = commits.changed() => {}
                    () = wake.notified() => {}
                    () = tokio::time::sleep(log.log.shared.poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok(Step::NotHolder) => {
                log.relay_lag.store(0, Ordering::Relaxed);
                let _ = tokio::time::timeout(LEASE / 3, stop.changed()).await;
            }
            Err(err) => {
                log.failed("relay", &err);
                backoff.wait(&mut stop).await;
            }
        }
    }
    // Another instance relays from here at once; if this fails, once the lease runs out.
    if let Err(err) = log.pool().release(me).await {
        tracing::debug!(%err, "sse event log: could not release the relay's lease");
    }
}

/// Relays one batch after the last relayed row, if this instance holds the lease.
async fn relay_once(
    log: &SqlLog,
    transport: &dyn Engine,
    sink: &Weak<dyn Sink>,
    me: u64,
    batch: usize,
) -> Result<Step, sqlx::Error> {
    if !log.pool().lease(me, LEASE).await? {
        return Ok(Step::NotHolder);
    }
    let relayed = log.pool().relayed().await?;
    let rows = log.pool().rows(relayed, u64::MAX >> 1, batch).await?;
    let Some(last) = rows.last().map(|row| row.seq) else {
        log.relay_lag.store(0, Ordering::Relaxed);
        crate::observe::relay_lag(0);
        return Ok(Step::Idle);
    };
    let newest = log.pool().newest().await?;
    let lag = newest.saturating_sub(relayed);
    log.relay_lag.store(lag, Ordering::Relaxed);
    crate::observe::relay_lag(lag);
    for row in rows {
        let seq = row.seq;
        if !transport.relay(relayed_row(log, row), seq) {
            tracing::error!("sse event log: this engine cannot relay the log");
            return Ok(Step::Stopped);
        }
    }
    // Marked once the engine has them: until then a crash leaves them to be sent again.
    let mut renewed = Instant::now();
    while transport.stats().outbox > 0 {
        if log.ctl.stopping(sink) {
            return Ok(Step::Stopped);
        }
        if renewed.elapsed() >= LEASE / 3 {
            renewed = Instant::now();
            if !log.pool().lease(me, LEASE).await? {
                return Ok(Step::NotHolder);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    log.pool().mark_relayed(last).await?;
    let lag = newest.saturating_sub(last);
    log.relay_lag.store(lag, Ordering::Relaxed);
    crate::observe::relay_lag(lag);
    Ok(Step::Relayed)
}

/// A row as the engine takes it; a malformed one becomes a reset marker, logged and counted.
fn relayed_row(log: &SqlLog, row: Row) -> Relayed {
    match row.content {
        Content::Event(event) => Relayed::Event(event),
        Content::Marker(reason) => Relayed::Marker(reason),
        Content::Malformed(why) => {
            log.ctl.counters.failed();
            tracing::error!(
                seq = row.seq,
                why,
                "sse event log: a row is not an event; relayed as a reset"
            );
            Relayed::Marker("an event in the log could not be read".to_owned())
        }
    }
}
