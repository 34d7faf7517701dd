//! The actix-web side: the stream endpoint ([`Broadcaster::service`], or
//! [`Broadcaster::respond`] in a handler of your own), serving with a clean shutdown
//! ([`Broadcaster::serve`]), and two middlewares: [`ClientIdMiddleware`] (no echo of a
//! client's own change, for `to_others`) and [`SnapshotIdMiddleware`] (the id a snapshot is
//! current to, so a page resumes its stream exactly after it). [`AddrBlock`]s name the
//! reverse proxies whose forwarded headers are believed; [`no_delay`] sends each event when
//! it is written.
//!
//! ```
//! use actix_web::App;
//! use sse_core::http::ClientIdMiddleware;
//! use sse_core::Broadcaster;
//!
//! let events = Broadcaster::new();
//! let app = App::new()
//!     .wrap(ClientIdMiddleware)
//!     .wrap(events.snapshot_id_middleware())
//!     .configure(events.service("/events"));
//! ```
//!
//! [`Broadcaster::service`]: crate::Broadcaster::service
//! [`Broadcaster::respond`]: crate::Broadcaster::respond
//! [`Broadcaster::serve`]: crate::Broadcaster::serve

// Inside: request parsing (once), refusals, admission, the client address.

mod client;
mod client_addr;
mod no_delay;
pub(crate) mod refusal;
pub(crate) mod request;
mod serve;
pub(crate) mod service;
mod snapshot;

pub use crate::emit::client_id::{ClientIdMiddleware, ClientIdService, CLIENT_ID_HEADER};
pub use crate::fanout::{AddrBlock, ForwardedHeader};
pub use no_delay::no_delay;
pub use snapshot::{SnapshotIdMiddleware, SnapshotIdService, SNAPSHOT_ID_HEADER};
