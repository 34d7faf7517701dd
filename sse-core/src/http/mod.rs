//! The actix-web side: the stream endpoint and its App registration, request parsing (once),
//! refusals, and serving with a clean shutdown.

mod client;
mod client_addr;
mod refusal;
mod request;
mod serve;
mod service;
mod snapshot;

pub use snapshot::{SnapshotIdMiddleware, SnapshotIdService, SNAPSHOT_ID_HEADER};
