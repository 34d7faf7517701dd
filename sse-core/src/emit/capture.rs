//! Events recorded instead of published, for [`testing::capture`](crate::testing::capture).

/// An event recorded by [`capture`](crate::testing::capture) instead of being published: what
/// the real path would have published, after the same serialization and topic resolution.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CapturedEvent {
    /// The event name.
    pub name: String,
    /// The payload, as it was serialized.
    pub payload: serde_json::Value,
    /// The topics the event would have been published to.
    pub topics: Vec<String>,
    /// Only for subscribers authorized for one of its topics.
    pub private: bool,
    /// Not echoed to the stream of the client that made the request.
    pub to_others: bool,
}
