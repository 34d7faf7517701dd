//! What `#[emit_event]` calls: the payload found in a handler's return value
//! ([`EventPayload`]), the broadcaster it goes to (scope), and the dispatch that serializes it
//! once and publishes each event.

mod capture;
pub(crate) mod client_id;
mod dispatch;
mod payload;
mod scope;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod transaction;

pub use capture::CapturedEvent;
pub(crate) use client_id::parse_client_id;
pub(crate) use client_id::CLIENT_ID_HEADER;
pub use dispatch::EventSpec;
pub use payload::{emit, emit_with, EventPayload, PayloadWriter, TypedPayload};
pub(crate) use scope::{register_worker_default, scoped, Target, REGISTER_HINT};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use transaction::{collect, commit, tx_handle, Collected, TxOutcome};
