//! What goes on the wire: event ids ([`EventId`], what a client sends back as
//! `Last-Event-ID`), the reset event ([`RESET_EVENT`], with its [`ResetReason`]), the frame
//! format ([`WireFormat`]) and the rule for event names ([`validate_event_name`]).

// Inside: pure functions and values, shared with `sse-macros` where they are rules; nothing
// here knows subscribers or engines.

pub(crate) mod encode;
pub(crate) mod gzip;
pub(crate) mod id;
mod reason;
pub(crate) mod rules;

pub(crate) use encode::Data;
pub use encode::{validate_event_name, WireFormat, RESET_EVENT};
pub use id::EventId;
pub(crate) use id::{new_epoch, LastEventId};
pub use reason::ResetReason;
