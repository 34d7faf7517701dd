//! What the runtime reports about itself: Prometheus-style metrics (feature `metrics`, through
//! the [`metrics`](https://docs.rs/metrics) facade, so the application picks the exporter),
//! `tracing` spans for every stream (`sse.stream`) and every `#[emit_event]` emission
//! (`sse.emit`), and what the live [`inspect`] page shows.
//!
//! ```text
//! // In an application, with `sse-core = { features = ["metrics"] }`:
//! let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! sse_core::observe::describe_metrics();
//! // ... serve `handle.render()` at /metrics (sse-demo does: see its `observe.rs`)
//! ```
//!
//! This module stands beside the layers: every layer reports to it through one-line hooks,
//! and it depends on none of them but for the typed reset reason. Without the feature the
//! metric hooks are empty inline functions, so the hot path is the same as without this
//! module.
//!
//! # Metrics
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `sse_streams_open` | gauge | | streams open now |
//! | `sse_streams_total` | counter | | streams opened |
//! | `sse_stream_duration_seconds` | histogram | `ended` | how long streams lasted, by how they ended (`client_gone`, `shutdown`, `expired`) |
//! | `sse_events_published_total` | counter | `event` | events published, by event name |
//! | `sse_deliveries_total` | counter | | writes to streams that carried events (a write joins the events ready at once) |
//! | `sse_written_bytes_total` | counter | | bytes written to streams, keep-alives included |
//! | `sse_keep_alives_total` | counter | | keep-alive comments written |
//! | `sse_resumes_total` | counter | `outcome` | streams opened with a `Last-Event-ID`: `resumed` or `reset` |
//! | `sse_resets_total` | counter | `reason` | reset events built, by [`ResetReason::label`](crate::ResetReason::label): `malformed_id`, `stale`, `ahead`, `too_old`, `unreachable` (the first five answer a `Last-Event-ID` and are resume outcomes too), `fell_behind`, `trimmed`, `new_epoch`, `lost` |
//! | `sse_catch_ups_total` | counter | | times a subscriber fell behind and was caught up from the history |
//! | `sse_refusals_total` | counter | `status` | stream requests refused, by HTTP status |
//! | `sse_emit_failures_total` | counter | `reason` | `#[emit_event]` events not published: `serialize`, `topic`, `publish`, `commit` (a transactional handler's commit failed), `no_broadcaster` |
//! | `sse_publish_to_write_seconds` | histogram | | from `publish` to the write of the event to a stream, sampled (the first write of each stream, then one in 64) |
//! | `sse_engine_outbox_events` | gauge | | events waiting for the event log engine (Redis, NATS) |
//! | `sse_relay_lag_events` | gauge | | with the SQL event log relayed to Redis or NATS, on the instance that relays: committed events the engine has not acknowledged |
//! | `sse_engine_reconnects_total` | counter | | times the engine connected again after losing the store |
//! | `sse_engine_publish_seconds` | histogram | | from `publish` to the engine acknowledging the event, per batch |
//!
//! Stream counters (`sse_deliveries_total`, `sse_written_bytes_total`,
//! `sse_keep_alives_total`) are added up in each stream and reported every 64 writes, at
//! each keep-alive and when the stream ends, so a write costs no shared atomic.
//!
//! # Spans
//!
//! - `sse.stream` (INFO), opened with each stream, a child of the request's span: `topics`,
//!   `resumed_from` (the `Last-Event-ID`), `missed` (events published after it, before topic
//!   filtering), `resume` (`resumed` or `reset`), `catch_ups`, `writes`, `bytes`, `ended`,
//!   `duration_ms`. Entered while the stream is polled, so its logs nest under it.
//! - `sse.emit` (INFO), one per event an `#[emit_event]` handler publishes, a child of the
//!   span current in the handler (`#[tracing::instrument]`, or a request span such as
//!   tracing-actix-web's): `event`, `topics`, `id`, `bytes`, `subscribers` (streams open
//!   when it was published: those its topics reach are among them), `error`.

mod hooks;
pub mod inspect;
#[cfg_attr(not(feature = "metrics"), path = "off.rs")]
mod metrics;
mod notes;
mod stream;

pub(crate) use hooks::*;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::describe_metrics;
pub(crate) use stream::{Ending, Observed, Opening};
