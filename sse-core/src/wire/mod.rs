//! What goes on the wire: SSE frames, event ids, and the naming rules shared with
//! `sse-macros`. Pure functions and values; nothing here knows subscribers or engines.

pub(crate) mod encode;
pub(crate) mod id;
mod reason;
pub(crate) mod rules;

pub(crate) use encode::Data;
pub use encode::{validate_event_name, WireFormat, RESET_EVENT};
pub(crate) use id::{new_epoch, LastEventId};
pub use id::{EventId, MalformedEventId};
pub use reason::ResetReason;
