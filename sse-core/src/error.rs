//! Every error of the public API, in one place: what can go wrong when publishing, when a
//! subscriber's credentials or a selector are checked, and when a setting cannot be used.
//! Each is a plain type a caller can match; none exposes a dependency's error type.

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

/// Why a selector, topic or template was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidTopic {
    reason: String,
}

impl InvalidTopic {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// A `Last-Event-ID` that is not of the form `<epoch>-<seq>` (or `<epoch>-<ms>-<seq>`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed event id")]
pub struct MalformedEventId;

/// Why a subscriber's credentials were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The credentials are malformed, badly signed or expired: 401.
    #[error("invalid credentials: {0}")]
    Invalid(String),
    /// Valid credentials that may not open a stream at all: 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
}

impl AuthError {
    /// [`AuthError::Invalid`] with a message for the client.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

#[cfg(feature = "jwt")]
/// An error of a library we do not expose.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// A key that [`JwtAuth`](crate::auth::JwtAuth) cannot verify tokens with.
#[cfg(feature = "jwt")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKey {
    /// Not the PEM of an RSA public key.
    #[error("not the PEM of an RSA public key: {0}")]
    Pem(#[source] Source),
    /// Not a JWK set in JSON (`{"keys": [...]}`).
    #[error("not a JWK set: {0}")]
    JwkSet(#[source] Source),
    /// A key of the set has a supported type but cannot be read.
    #[error("JWK {kid:?}: {source}")]
    Jwk {
        /// The key's `kid`, if it has one.
        kid: Option<String>,
        /// What is wrong with it.
        #[source]
        source: Source,
    },
    /// No key of the set can verify signatures (all were encryption keys, symmetric, or of an
    /// unsupported type or algorithm).
    #[error("the JWK set has no signature verification key ({skipped} skipped)")]
    NoUsableKey {
        /// How many keys were skipped.
        skipped: usize,
    },
}

/// A string that is not an address block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid address block {0:?}: expected an IP address, optionally with /prefix")]
pub struct InvalidAddrBlock(pub(crate) String);

#[cfg(feature = "redis")]
/// A Redis URL that redis-rs cannot use, from
/// [`BroadcasterBuilder::redis`](crate::BroadcasterBuilder::redis). The URL it shows has no
/// password ([`redact_url`](crate::engine::redact_url)).
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL {url:?}: {reason}")]
pub struct InvalidRedisUrl {
    pub(crate) url: String,
    pub(crate) reason: String,
}

#[cfg(feature = "nats")]
/// NATS settings that cannot be used, from
/// [`BroadcasterBuilder::nats`](crate::BroadcasterBuilder::nats): the URL, or the stream name.
#[derive(Debug, thiserror::Error)]
#[error("invalid NATS setting {what}: {reason}")]
pub struct InvalidNatsConfig {
    /// The URL (credentials removed) or the stream name.
    pub(crate) what: String,
    pub(crate) reason: String,
}

/// Why the SQL event log ([`sql::EventLog`](crate::sql::EventLog), features `sqlite`,
/// `postgres`) could not be opened or read.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// The tables are not there: the application has not run the schema.
    #[error(
        "the event log's tables `sse_events` and `sse_log` do not exist: add \
         `sse_core::sql::SQLITE_SCHEMA` or `POSTGRES_SCHEMA` to the application's migrations, or \
         call `EventLog::ensure_schema` at start"
    )]
    NoSchema,
    /// The database refused or could not be reached.
    #[error("the event log's database failed: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a transactional handler's change and its events were not committed; neither was.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The broadcaster that the handler's `App` registered has no SQL event log.
    #[error(
        "a transactional handler needs an event log: build the Broadcaster with \
         `.event_log(&log)` (an `sse_core::sql::EventLog`)"
    )]
    NoEventLog,
    /// The transaction was already committed or rolled back.
    #[error("the transaction has already ended")]
    Ended,
    /// An event's payload or topic could not be made; the change was rolled back with it.
    #[error("event `{event}` could not be made, so the change was rolled back: {reason}")]
    Event {
        /// The event name.
        event: String,
        /// What went wrong.
        reason: String,
    },
    /// The database failed: beginning, writing the events, or committing.
    #[error("the transaction failed: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}
