//! Topics: the selectors subscribers choose, the templates events fill, and the route each
//! frame carries so that a subscriber's filter decides without touching its bytes.

mod route;
mod selector;
pub(crate) mod syntax;
mod template;

pub use route::Delivery;
pub(crate) use route::{Filter, Route};
pub use selector::{InvalidTopic, TopicSelector, MAX_TOPIC_LEN};
pub(crate) use selector::{Part, Shape};
pub(crate) use template::{has_fields, render};
