//! The one-line hooks called where something happens (by the fan-out's counters, the one
//! owner of counting, and by the engines). Each feeds the metrics (empty
//! without the feature), the stream notes, and the inspector when one is enabled.

use std::time::Duration;

use tracing::field::Empty;
use tracing::Span;

use super::{inspect, metrics, notes};
use crate::error::PublishError;
use crate::topic::Route;
use crate::wire::{EventId, ResetReason};

/// An event was published (`id`: `None` when an event log engine assigns it later); per event,
/// never per subscriber.
#[inline]
pub(crate) fn published(event: &str, route: &Route, id: Option<EventId>, bytes: usize) {
    metrics::published(event);
    if let Some(id) = id {
        metrics::published_at(id);
    }
    inspect::published(event, route, id, bytes);
}

/// An event published through an event log engine arrived back from it, with its id.
#[inline]
pub(crate) fn arrived(id: EventId) {
    metrics::published_at(id);
}

/// A reset event was built for `reason`: for one subscriber or (a live reset) for all.
pub(crate) fn reset(reason: ResetReason) {
    metrics::reset(reason.label());
    if reason.answers_resume() {
        metrics::resume("reset");
    }
    notes::reset(reason.label());
}

/// A stream resumed from its `Last-Event-ID`.
#[inline]
pub(crate) fn resumed() {
    metrics::resume("resumed");
    notes::resumed();
}

/// A subscriber that fell behind was caught up from the history.
#[inline]
pub(crate) fn caught_up() {
    metrics::caught_up();
    notes::caught_up();
}

/// A stream request was refused with `status`.
#[inline]
pub(crate) fn refused(status: u16) {
    metrics::refused(status);
}

/// An `#[emit_event]` event was not published: `serialize`, `topic`, `publish` or
/// `no_broadcaster`.
#[inline]
pub(crate) fn emit_failed(reason: &'static str) {
    metrics::emit_failed(reason);
}

/// The `sse.emit` span of one event an `#[emit_event]` handler publishes: a child of the span
/// current in the handler. Enter it around the publish, then call [`emitted`].
pub(crate) fn emit_span(event: &str, route: &Route, bytes: usize) -> Span {
    tracing::info_span!(
        "sse.emit",
        event,
        topics = %route.topics.join(","),
        private = route.private,
        bytes,
        id = Empty,
        subscribers = Empty,
        error = Empty,
    )
}

/// Records how the publish of an `sse.emit` span went.
pub(crate) fn emitted(span: &Span, result: &Result<EventId, PublishError>, subscribers: usize) {
    match result {
        Ok(id) => span.record("id", tracing::field::display(id)),
        Err(err) => span.record("error", tracing::field::display(err)),
    };
    span.record("subscribers", subscribers);
}

/// The event log engine connected again after losing the store.
// Called by the server engines (Redis, NATS) only.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "sqlite",
        feature = "postgres"
    )),
    allow(dead_code)
)]
#[inline]
pub(crate) fn engine_reconnected() {
    metrics::engine_reconnected();
}

/// The engine acknowledged a batch whose oldest event waited `waited` since `publish`;
/// `outbox` events are still waiting.
// Called by the server engines (Redis, NATS) only.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "sqlite",
        feature = "postgres"
    )),
    allow(dead_code)
)]
#[inline]
pub(crate) fn engine_published(waited: Duration, outbox: usize) {
    metrics::engine_published(waited);
    metrics::engine_outbox(outbox);
}

/// The relay of the SQL event log is `events` behind the log.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[inline]
pub(crate) fn relay_lag(events: u64) {
    metrics::relay_lag(events);
}

/// The engine's outbox now holds `events`.
// Called by the server engines (Redis, NATS) only.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "sqlite",
        feature = "postgres"
    )),
    allow(dead_code)
)]
#[inline]
pub(crate) fn engine_outbox(events: usize) {
    metrics::engine_outbox(events);
}
