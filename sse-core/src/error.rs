//! What can go wrong when publishing an event.

/// Why an event could not be published.
///
/// Publishing never fails because of a subscriber: a slow or vanished client is handled by the
/// stream (catch-up, reset, disconnect), not reported to the publisher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The payload could not be serialized to JSON.
    #[error("event `{event}`: payload could not be serialized to JSON: {source}")]
    Serialize {
        /// The event name.
        event: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The event name cannot be sent on the SSE wire.
    #[error("invalid event name {name:?}: {reason}")]
    InvalidEventName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A topic is empty, too long or contains control characters, or a topic template could
    /// not be filled from the payload.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The rejected topic, or the template.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broadcaster was shut down; no more events are accepted.
    #[error("the broadcaster is shut down")]
    Closed,
}
