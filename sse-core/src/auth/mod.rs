//! Who may see private events: the pluggable [`Authorize`] check and what it grants.

use std::time::SystemTime;

use actix_web::HttpRequest;

use crate::topic::TopicSelector;

#[cfg(feature = "jwt")]
mod jwks;
#[cfg(feature = "jwt")]
mod jwt;
#[cfg(feature = "jwt")]
pub use jwt::JwtAuth;

use crate::error::AuthError;

/// Decides, from the stream request, which private topics a subscriber may see. Set it with
/// [`BroadcasterBuilder::authorizer`](crate::BroadcasterBuilder::authorizer);
/// `JwtAuth` (feature `jwt`) is a ready one.
///
/// ```
/// use actix_web::HttpRequest;
/// use sse_core::{error::AuthError, Authorize, Broadcaster, Grant, TopicSelector};
///
/// /// Trusts a header set by an authenticating proxy in front of the app.
/// struct ProxyUser;
///
/// impl Authorize for ProxyUser {
///     fn authorize(&self, req: &HttpRequest) -> Result<Option<Grant>, AuthError> {
///         let Some(user) = req.headers().get("x-user-id") else {
///             return Ok(None); // anonymous: public events only
///         };
///         let user = user.to_str().map_err(|_| AuthError::invalid("bad x-user-id"))?;
///         // `literal`: a user value such as `{x}` or `*` must not widen the grant.
///         let own = TopicSelector::literal(&format!("users/{user}/private"))
///             .map_err(|e| AuthError::invalid(e.to_string()))?;
///         Ok(Some(Grant::new([own])))
///     }
/// }
///
/// let events = Broadcaster::builder().authorizer(ProxyUser).build();
/// ```
pub trait Authorize: Send + Sync + 'static {
    /// `Ok(None)` when the request carries no credentials (the subscriber then sees public
    /// events only), `Ok(Some(grant))` for valid ones, an error for credentials that are
    /// present but invalid or expired (answered with 401 even when no private topic was
    /// asked for).
    fn authorize(&self, req: &HttpRequest) -> Result<Option<Grant>, AuthError>;

    /// The credentials this authorizer reads, as AsyncAPI 3.0 security scheme objects by
    /// name (any one of them is enough), for the served AsyncAPI document. The default is
    /// none: the document then advertises no scheme rather than a wrong one.
    ///
    /// ```
    /// # use actix_web::HttpRequest;
    /// # use sse_core::{error::AuthError, Authorize, Grant};
    /// # struct ProxyUser;
    /// impl Authorize for ProxyUser {
    /// #   fn authorize(&self, _: &HttpRequest) -> Result<Option<Grant>, AuthError> { Ok(None) }
    ///     // fn authorize(..) as above
    ///     fn security_schemes(&self) -> serde_json::Map<String, serde_json::Value> {
    ///         let scheme = serde_json::json!({
    ///             "type": "httpApiKey", "in": "header", "name": "x-user-id",
    ///         });
    ///         [("proxy".to_owned(), scheme)].into_iter().collect()
    ///     }
    /// }
    /// ```
    fn security_schemes(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}

/// What an authorized subscriber may see: the private topics matched by these selectors,
/// until `expires_at`, when its stream ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Selectors of the private topics the subscriber may receive.
    pub topics: Vec<TopicSelector>,
    /// When the credentials expire; an open stream is ended then.
    pub expires_at: Option<SystemTime>,
}

impl Grant {
    /// A grant for the private topics matched by `topics`, without expiry.
    pub fn new(topics: impl IntoIterator<Item = TopicSelector>) -> Self {
        Self {
            topics: topics.into_iter().collect(),
            expires_at: None,
        }
    }

    /// Ends the subscriber's stream at `at`.
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }
}
