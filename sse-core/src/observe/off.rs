//! The metric hooks without the `metrics` feature: empty and inlined, so a build without it
//! runs exactly the code it ran before metrics existed.

use std::time::Duration;

use crate::wire::EventId;

#[inline(always)]
pub(super) fn published(_event: &str) {}

#[inline(always)]
pub(super) fn reset(_reason: &'static str) {}

#[inline(always)]
pub(super) fn resume(_outcome: &'static str) {}

#[inline(always)]
pub(super) fn caught_up() {}

#[inline(always)]
pub(super) fn refused(_status: u16) {}

#[inline(always)]
pub(super) fn emit_failed(_reason: &'static str) {}

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
#[inline(always)]
pub(super) fn engine_reconnected() {}

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
#[inline(always)]
pub(super) fn engine_published(_waited: Duration) {}

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
#[inline(always)]
pub(super) fn engine_outbox(_events: usize) {}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[inline(always)]
pub(super) fn relay_lag(_events: u64) {}

#[inline(always)]
pub(super) fn published_at(_id: EventId) {}

#[inline(always)]
pub(super) fn stream_opened() {}

#[inline(always)]
pub(super) fn stream_wrote(_deliveries: u64, _bytes: u64, _keep_alives: u64) {}

#[inline(always)]
pub(super) fn sample(_chunk: &[u8]) {}

#[inline(always)]
pub(super) fn stream_closed(_ended: &'static str, _lasted: Duration) {}
