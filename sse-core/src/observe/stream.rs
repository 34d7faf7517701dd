//! One stream, observed: its `sse.stream` span, its metric handles, and what it wrote, added
//! up locally and reported in batches, so a write costs a few additions and no shared atomic.

use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use tracing::field::Empty;
use tracing::Span;

use super::inspect;
use super::metrics::StreamMetrics;
use super::notes::{self, Notes};
use crate::fanout::Shared;
use crate::topic::Filter;
use crate::wire::EventId;

/// Writes between two reports of a stream's counters (also reported at each keep-alive and
/// when it ends).
const REPORT_EVERY: u32 = 64;

/// One write in this many has its publish-to-write latency measured.
const SAMPLE_EVERY: u32 = 64;

/// A stream about to open: made before the subscriber is registered, so that what the
/// registration notes (a resume, a reset) is this stream's.
pub(crate) struct Opening {
    span: Span,
    resumed_from: Option<EventId>,
    resuming: bool,
    topics: Option<Box<str>>,
    expires_at: Option<tokio::time::Instant>,
}

/// A stream of chunks, wrapped to observe what it writes and how it ends. Transparent: it
/// derefs to the stream it wraps.
pub(crate) struct Observed<S> {
    inner: S,
    shared: Arc<Shared>,
    span: Span,
    metrics: StreamMetrics,
    opened: Instant,
    expires_at: Option<tokio::time::Instant>,
    /// Opened with a `Last-Event-ID` whose outcome is not known yet.
    resuming: bool,
    /// Under the inspector, the topics it was recorded with.
    topics: Option<Box<str>>,
    /// Not yet reported.
    deliveries: u64,
    bytes: u64,
    keep_alives: u64,
    unreported: u32,
    /// Totals, for the span.
    writes: u64,
    written: u64,
    catch_ups: u32,
    until_sample: u32,
    /// The inner stream ended (shutdown).
    ended: bool,
}

impl Opening {
    /// Starts observing a stream with `filter`, resuming after `last_event_id`.
    pub(crate) fn new(
        filter: &Filter,
        last_event_id: Option<&str>,
        expires_at: Option<tokio::time::Instant>,
    ) -> Opening {
        notes::clear();
        let resumed_from = last_event_id.and_then(|id| id.parse().ok());
        let span = tracing::info_span!(
            "sse.stream",
            topics = %inspect::topics_of(filter),
            resumed_from = last_event_id,
            missed = Empty,
            resume = Empty,
            catch_ups = Empty,
            writes = Empty,
            bytes = Empty,
            ended = Empty,
            duration_ms = Empty,
        );
        let topics = inspect::enabled().then(|| inspect::topics_of(filter));
        Opening {
            span,
            resumed_from,
            resuming: last_event_id.is_some(),
            topics: topics.filter(|t| inspect::stream_opened(t)),
            expires_at,
        }
    }
}

impl<S> Observed<S> {
    /// The stream for the request that was [opening](Opening::new), registered now.
    pub(crate) fn new(opening: Opening, inner: S, shared: &Arc<Shared>) -> Self {
        let mut this = Self {
            inner,
            shared: shared.clone(),
            span: opening.span,
            metrics: StreamMetrics::open(),
            opened: Instant::now(),
            expires_at: opening.expires_at,
            resuming: opening.resuming,
            topics: opening.topics,
            deliveries: 0,
            bytes: 0,
            keep_alives: 0,
            unreported: 0,
            writes: 0,
            written: 0,
            catch_ups: 0,
            // The first event write is sampled, so a quiet stream shows its latency too.
            until_sample: 1,
            ended: false,
        };
        if !this.span.is_disabled() {
            if let Some(from) = opening.resumed_from {
                let head = shared.lock().last_id;
                if from.epoch() == head.epoch() && from.entry_parts().is_none() {
                    this.span
                        .record("missed", head.seq().saturating_sub(from.seq()));
                }
            }
        }
        this.noted(notes::take());
        this
    }

    /// Takes what the fan-out noted during a poll (or the registration).
    fn noted(&mut self, notes: Notes) {
        if self.resuming && (notes.resumed || notes.reset.is_some()) {
            self.resuming = false;
            let outcome = if notes.resumed { "resumed" } else { "reset" };
            self.span.record("resume", outcome);
        }
        self.catch_ups = self.catch_ups.saturating_add(notes.caught_up);
    }

    fn wrote(&mut self, chunk: &Bytes) {
        let len = chunk.len() as u64;
        self.writes += 1;
        self.written += len;
        self.bytes += len;
        self.unreported += 1;
        let keep_alive = chunk.starts_with(b": keep-alive");
        if keep_alive {
            self.keep_alives += 1;
        } else if chunk.first() != Some(&b':') {
            self.deliveries += 1;
            self.until_sample -= 1;
            if self.until_sample == 0 {
                self.until_sample = SAMPLE_EVERY;
                self.metrics.sample(chunk);
            }
        }
        if keep_alive || self.unreported >= REPORT_EVERY {
            self.report();
        }
    }

    fn report(&mut self) {
        self.metrics
            .report(self.deliveries, self.bytes, self.keep_alives);
        (
            self.deliveries,
            self.bytes,
            self.keep_alives,
            self.unreported,
        ) = (0, 0, 0, 0);
    }

    /// How the stream ended.
    fn ending(&self) -> &'static str {
        if self.ended || self.shared.is_closed() {
            "shutdown"
        } else if self
            .expires_at
            .is_some_and(|at| at <= tokio::time::Instant::now())
        {
            "expired"
        } else {
            "client_gone"
        }
    }
}

impl<S> Deref for Observed<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.inner
    }
}

impl<S: Stream<Item = Bytes> + Unpin> Stream for Observed<S> {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        let polled = if this.span.is_disabled() {
            Pin::new(&mut this.inner).poll_next(cx)
        } else {
            notes::clear();
            let polled = this
                .span
                .in_scope(|| Pin::new(&mut this.inner).poll_next(cx));
            this.noted(notes::take());
            polled
        };
        match &polled {
            Poll::Ready(Some(chunk)) => this.wrote(chunk),
            Poll::Ready(None) => this.ended = true,
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Observed<S> {
    fn drop(&mut self) {
        self.report();
        let ended = self.ending();
        let lasted = self.opened.elapsed();
        self.metrics.closed(ended, lasted);
        if let Some(topics) = &self.topics {
            inspect::stream_closed(topics);
        }
        let span = &self.span;
        span.record("catch_ups", self.catch_ups);
        span.record("writes", self.writes);
        span.record("bytes", self.written);
        span.record("ended", ended);
        span.record(
            "duration_ms",
            u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX),
        );
    }
}
