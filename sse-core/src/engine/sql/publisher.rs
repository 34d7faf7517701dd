//! The publisher task: events published outside a transaction (`Broadcaster::publish`) wait
//! in the outbox and are written a batch per transaction, in order, retried with backoff
//! while the database is unreachable.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::backend::Open;
use super::SqlLog;
use crate::engine::{Backoff, Sink};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
const BATCH: usize = 256;

pub(super) async fn run(log: Arc<SqlLog>, sink: Weak<dyn Sink>) {
    // However this task ends, `stopped()` resolves.
    let _done = log.ctl.finish_on_drop();
    let mut stop = log.ctl.stop.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    loop {
        let (batch, lost) = log.ctl.outbox.peek(BATCH);
        if batch.is_empty() && lost == 0 {
            if log.ctl.stopping(&sink) {
                return;
            }
            // The timeout only bounds how late a dropped broadcaster is noticed.
            let _ = tokio::time::timeout(Duration::from_secs(1), log.ctl.wake.notified()).await;
            continue;
        }
        if log.ctl.stopping(&sink) && log.ctl.flush_deadline_passed() {
            abandon(&log);
            return;
        }
        let reason = (lost > 0)
            .then(|| format!("{lost} events were lost while the database was unreachable"));
        let events: Vec<_> = batch.iter().map(|out| &out.item).collect();
        let written = async {
            let mut tx = Open::begin(log.pool()).await?;
            tx.insert(&events, reason.as_deref()).await?;
            tx.commit().await
        };
        match written.await {
            Ok(()) => {
                backoff.reset();
                if let Some(oldest) = batch.first() {
                    log.ctl.published(oldest.queued_at);
                }
                log.ctl.outbox.ack(batch.last().map(|o| o.ticket), lost);
                log.log.committed();
            }
            Err(err) => {
                log.failed("publisher", &err);
                if log.ctl.stopping(&sink) && log.ctl.flush_deadline_passed() {
                    abandon(&log);
                    return;
                }
                backoff.wait(&mut stop).await;
            }
        }
    }
}

/// Logs and counts what is left in the outbox when the log stops without having written it.
fn abandon(log: &SqlLog) {
    let left = log.ctl.outbox.abandon();
    if left > 0 {
        tracing::error!(
            events = left,
            "sse event log stopped with the database unreachable; queued events not written"
        );
    }
}
