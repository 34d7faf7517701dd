//! Topics: every event has one or more (by default its name), and a subscriber picks them
//! with `?topic=<selector>` ([`TopicSelector`]); a subscriber without one gets every public
//! event. Topics are `/`-separated segments of at most [`MAX_TOPIC_LEN`] bytes.

// Inside: the templates events fill, and the route each frame carries so that a subscriber's
// filter decides without touching its bytes.

mod route;
mod selector;
pub(crate) mod syntax;
mod template;

pub(crate) use route::Delivery;
pub(crate) use route::{Filter, Route};
pub(crate) use selector::{merge, Part, Shape};
pub use selector::{TopicSelector, MAX_SEGMENTS, MAX_TOPIC_LEN};
pub(crate) use template::{has_fields, render};
