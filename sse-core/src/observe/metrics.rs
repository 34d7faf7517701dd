//! The metrics, through the `metrics` facade (feature `metrics`); `off.rs` has the same
//! functions, empty, for builds without it. Names and labels are listed in the table of
//! [`crate::observe`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};

use crate::wire::EventId;

/// Gives every metric of the table in [`crate::observe`] its help text and unit, for the
/// exporter to show (Prometheus's `# HELP`). Call it once, after installing the recorder.
///
/// ```
/// sse_core::observe::describe_metrics(); // without a recorder: does nothing
/// ```
pub fn describe_metrics() {
    describe_gauge!("sse_streams_open", "Event streams open now.");
    describe_counter!("sse_streams_total", "Event streams opened.");
    describe_histogram!(
        "sse_stream_duration_seconds",
        Unit::Seconds,
        "How long event streams lasted, by how they ended."
    );
    describe_counter!(
        "sse_events_published_total",
        "Events published, by event name."
    );
    describe_counter!(
        "sse_deliveries_total",
        "Writes to event streams that carried events (one write joins the events ready at once)."
    );
    describe_counter!(
        "sse_written_bytes_total",
        Unit::Bytes,
        "Bytes written to event streams, keep-alives included."
    );
    describe_counter!("sse_keep_alives_total", "Keep-alive comments written.");
    describe_counter!(
        "sse_resumes_total",
        "Event streams opened with a Last-Event-ID, by outcome."
    );
    describe_counter!("sse_resets_total", "Reset events built, by reason.");
    describe_counter!(
        "sse_catch_ups_total",
        "Times a subscriber fell behind and was caught up from the history."
    );
    describe_counter!(
        "sse_refusals_total",
        "Event stream requests refused, by HTTP status."
    );
    describe_counter!(
        "sse_emit_failures_total",
        "Events of #[emit_event] handlers not published, by reason."
    );
    describe_histogram!(
        "sse_publish_to_write_seconds",
        Unit::Seconds,
        "From publish to the write of the event to a stream (the first write of each stream, then one in 64)."
    );
    describe_gauge!(
        "sse_relay_lag_events",
        "Committed events of the SQL event log not yet acknowledged by the engine it is relayed to."
    );
    describe_gauge!(
        "sse_engine_outbox_events",
        "Events waiting for the event log engine."
    );
    describe_counter!(
        "sse_engine_reconnects_total",
        "Times the event log engine connected again after losing the store."
    );
    describe_histogram!(
        "sse_engine_publish_seconds",
        Unit::Seconds,
        "From publish to the event log engine acknowledging the event, per batch."
    );
}

pub(super) fn published(event: &str) {
    // Per event, not per subscriber: the registry lookup is paid once per publish.
    counter!("sse_events_published_total", "event" => event.to_owned()).increment(1);
}

pub(super) fn reset(reason: &'static str) {
    counter!("sse_resets_total", "reason" => reason).increment(1);
}

pub(super) fn resume(outcome: &'static str) {
    counter!("sse_resumes_total", "outcome" => outcome).increment(1);
}

pub(super) fn caught_up() {
    counter!("sse_catch_ups_total").increment(1);
}

pub(super) fn refused(status: u16) {
    counter!("sse_refusals_total", "status" => status.to_string()).increment(1);
}

pub(super) fn emit_failed(reason: &'static str) {
    counter!("sse_emit_failures_total", "reason" => reason).increment(1);
}

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
pub(super) fn engine_reconnected() {
    counter!("sse_engine_reconnects_total").increment(1);
}

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
pub(super) fn engine_published(waited: Duration) {
    histogram!("sse_engine_publish_seconds").record(waited.as_secs_f64());
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(super) fn relay_lag(events: u64) {
    gauge!("sse_relay_lag_events").set(events as f64);
}

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
pub(super) fn engine_outbox(events: usize) {
    gauge!("sse_engine_outbox_events").set(events as f64);
}

// A stream's metrics are looked up when they are reported (once per `REPORT_EVERY` writes, per
// keep-alive, and at open and close), not held: handles would cost every open stream 80 bytes.

pub(super) fn stream_opened() {
    counter!("sse_streams_total").increment(1);
    gauge!("sse_streams_open").increment(1.0);
}

/// Adds what a stream wrote since its last report.
pub(super) fn stream_wrote(deliveries: u64, bytes: u64, keep_alives: u64) {
    counter!("sse_deliveries_total").increment(deliveries);
    counter!("sse_written_bytes_total").increment(bytes);
    counter!("sse_keep_alives_total").increment(keep_alives);
}

/// A sampled write: how long ago the event that `chunk` starts with was published.
pub(super) fn sample(chunk: &[u8]) {
    if let Some(waited) = since_published(chunk) {
        histogram!("sse_publish_to_write_seconds").record(waited.as_secs_f64());
    }
}

pub(super) fn stream_closed(ended: &'static str, lasted: Duration) {
    gauge!("sse_streams_open").decrement(1.0);
    histogram!("sse_stream_duration_seconds", "ended" => ended).record(lasted.as_secs_f64());
}

/// When recent events were published, for the sampled publish-to-write latency: a slot per
/// id hash, holding 24 bits of the hash and 40 bits of microseconds since `EPOCH` in one
/// atomic, so that a reader never pairs one event's hash with another's time.
static PUBLISHED_AT: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
const SLOTS: usize = 4096;
const TIME_BITS: u32 = 40;
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn slot(id: &EventId) -> (usize, u64) {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hash =
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id);
    ((hash as usize) % SLOTS, hash >> TIME_BITS)
}

fn micros_now() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX) & ((1 << TIME_BITS) - 1)
}

/// Notes when `id` was published (or, with an engine, read back from it); per event.
pub(super) fn published_at(id: EventId) {
    let (slot, tag) = slot(&id);
    // Relaxed: a sample that misses a store made on another thread is merely not taken.
    PUBLISHED_AT[slot].store((tag << TIME_BITS) | micros_now(), Ordering::Relaxed);
}

/// How long ago the event at the start of `chunk` (`id: ...\n`) was published, if it is still
/// in the table.
fn since_published(chunk: &[u8]) -> Option<Duration> {
    let rest = chunk.strip_prefix(b"id: ")?;
    let end = memchr::memchr(b'\n', rest)?;
    let id: EventId = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let (slot, tag) = slot(&id);
    let entry = PUBLISHED_AT[slot].load(Ordering::Relaxed);
    if entry >> TIME_BITS != tag || entry == 0 {
        return None;
    }
    let at = entry & ((1 << TIME_BITS) - 1);
    Some(Duration::from_micros(micros_now().checked_sub(at)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampled_write_finds_when_its_event_was_published() {
        let id = EventId::new(77, 5);
        published_at(id);
        std::thread::sleep(Duration::from_millis(2));
        let chunk = format!("id: {id}\nevent: e\ndata: 1\n\n");
        let waited = since_published(chunk.as_bytes()).expect("in the table");
        assert!(waited >= Duration::from_millis(2), "{waited:?}");
        assert_eq!(since_published(b": keep-alive\n\n"), None);
        let other = format!("id: {}\n\n", EventId::new(78, 5));
        assert_eq!(since_published(other.as_bytes()), None);
    }
}
