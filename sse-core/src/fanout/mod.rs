//! The fan-out: publish once, deliver the same bytes to every subscriber. Knows nothing of
//! actix or of any particular event log engine.

pub(crate) mod admission;
pub(crate) mod broadcaster;
mod builder;
mod event;
pub(crate) mod frame;
mod history;
mod hub;
mod index;
mod mailbox;
mod presence;
mod stats;
pub(crate) mod stream;

pub use admission::{AddrBlock, ForwardedHeader};
pub(crate) use admission::{Admission, OverLimit};
pub use broadcaster::Broadcaster;
pub use builder::BroadcasterBuilder;
pub use event::Event;
pub(crate) use hub::Hub;
pub use presence::PresenceChanges;
pub use stats::Stats;
pub(crate) use stats::{Counters, EmitFailure, Refusals, Refused};
pub use stream::EventStream;
