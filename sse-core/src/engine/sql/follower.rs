//! The follower task: reads the table after the last position delivered, in order, into the
//! broadcaster's sink; wakes on a commit in this process, a PostgreSQL notification or the
//! poll; applies retention now and then; after a failure, retries with backoff from where it
//! was, so nothing is skipped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{SqlLog, BATCH, TRIM_EVERY};
use crate::engine::{Backoff, ResetReason, Sink};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

pub(super) async fn run(log: Arc<SqlLog>, sink: Weak<dyn Sink>) {
    let mut stop = log.ctl.stop.subscribe();
    let mut commits = log.log.shared.commits.subscribe();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    // Live delivery starts after the newest event when the log was opened: the
    // broadcaster's first streams were told that id.
    let mut last = log.log.shared.newest;
    match sink.upgrade() {
        Some(sink) => sink.start_epoch(log.id(last)),
        None => return,
    }
    log.newest.store(last, Ordering::Relaxed);
    let mut wake = Wake::new(&log).await;
    let mut next_trim = Instant::now() + TRIM_EVERY;
    let mut failing = false;
    loop {
        if log.ctl.stopping(&sink) {
            return;
        }
        match read(&log, &sink, &mut last).await {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    log.ctl.counters.reconnected();
                    tracing::info!(
                        "sse event log: the database is back; reading from where it was"
                    );
                }
                backoff.reset();
            }
            Err(err) => {
                failing = true;
                log.failed("follower", &err);
                backoff.wait(&mut stop).await;
                continue;
            }
        }
        if Instant::now() >= next_trim {
            next_trim = Instant::now() + TRIM_EVERY;
            trim(&log, u64::MAX).await;
        }
        tokio::select! {
            _ = commits.changed() => {}
            () = wake.notified() => {}
            () = tokio::time::sleep(log.log.shared.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Delivers every row after `last`, a batch at a time.
async fn read(log: &SqlLog, sink: &Weak<dyn Sink>, last: &mut u64) -> Result<(), sqlx::Error> {
    loop {
        let rows = log.pool().rows(*last, u64::MAX >> 1, BATCH).await?;
        let Some(sink) = sink.upgrade() else {
            return Ok(());
        };
        let full = rows.len() == BATCH;
        // A hole after `last` is a rolled-back transaction's position, or rows trimmed
        // before this instance read them: the mark tells which.
        if rows.first().is_some_and(|row| row.seq > *last + 1) {
            let trimmed = log.pool().trimmed().await?;
            if trimmed > *last {
                log.ctl.counters.gap();
                sink.gap(ResetReason::Trimmed);
            }
        }
        for row in rows {
            *last = row.seq;
            sink.deliver(log.entry(row));
        }
        log.newest.fetch_max(*last, Ordering::Relaxed);
        if !full {
            return Ok(());
        }
    }
}

/// Applies retention (never past `keep_after`); a failure is logged and tried again later.
pub(super) async fn trim(log: &SqlLog, keep_after: u64) {
    let options = log.options;
    match log
        .pool()
        .trim(
            options.history.max(1),
            options.history_bytes.max(1),
            log.log.shared.retain_for,
            keep_after,
        )
        .await
    {
        Ok(0) => {}
        Ok(removed) => tracing::debug!(removed, "sse event log: trimmed"),
        Err(err) => log.failed("retention", &err),
    }
}

/// What wakes a follower besides commits in this process: PostgreSQL's notifications.
pub(super) enum Wake {
    Poll,
    #[cfg(feature = "postgres")]
    Listen(Box<sqlx::postgres::PgListener>),
}

impl Wake {
    pub(super) async fn new(log: &SqlLog) -> Self {
        match log.pool() {
            #[cfg(feature = "postgres")]
            super::Pool::Postgres(pool) => {
                let listener = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                    listener.listen(super::backend::CHANNEL).await?;
                    Ok::<_, sqlx::Error>(listener)
                };
                match listener.await {
                    Ok(listener) => Wake::Listen(Box::new(listener)),
                    Err(err) => {
                        log.failed("listen", &err);
                        Wake::Poll
                    }
                }
            }
            #[allow(unreachable_patterns)]
            _ => Wake::Poll,
        }
    }

    /// Resolves at a notification, or when the connection was lost (then it reconnects, and
    /// the follower reads in case it missed one); never while polling alone.
    pub(super) async fn notified(&mut self) {
        match self {
            Wake::Poll => std::future::pending().await,
            #[cfg(feature = "postgres")]
            Wake::Listen(listener) => {
                if let Err(err) = listener.try_recv().await {
                    tracing::debug!(%err, "sse event log: LISTEN connection failed");
                    tokio::time::sleep(BACKOFF_START).await;
                }
            }
        }
    }
}
