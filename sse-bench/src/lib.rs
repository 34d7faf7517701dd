//! Load tool and benchmarks for `sse-core`: real SSE connections over loopback against our
//! server and a naive `tokio::sync::broadcast` one, with loss, latency, CPU and memory.
//!
//! ```text
//! cargo run -p sse-bench --release -- fanout --compare
//! ```
//!
//! See `BENCHMARKS.md` at the repository root for the presets and the figures.

pub mod cli;
pub mod client;
pub mod control;
pub mod engines;
pub mod http;
pub mod mercure;
pub mod presets;
pub mod procfs;
pub mod publisher;
pub mod report;
pub mod resume_storm;
pub mod run;
pub mod scale;
pub mod server;
pub mod soak;
pub mod sse;
pub mod stats;
pub mod tx;
