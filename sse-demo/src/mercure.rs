//! `--mercure`: the demo is also a Mercure hub, at `/.well-known/mercure` on its own port,
//! configured from the environment variables the reference hub reads.

use sse_core::mercure::{JwtKey, Mercure};

/// The Mercure flags of the demo.
// No `Debug`: the keys are secrets.
#[derive(Clone, clap::Args)]
pub struct MercureArgs {
    /// Serve a Mercure hub at `/.well-known/mercure` (publish with a token signed with
    /// `MERCURE_PUBLISHER_JWT_KEY`), sharing the demo's events; responses get a
    /// `Link: <...>; rel="mercure"` header.
    #[arg(long)]
    pub mercure: bool,

    /// Serve Mercure subscribers without a token (public updates only).
    #[arg(long, requires = "mercure")]
    pub mercure_anonymous: bool,

    /// The key of publishers' tokens: a secret for HS256, the PEM of a public key for RS256.
    #[arg(long, env = "MERCURE_PUBLISHER_JWT_KEY", hide_env_values = true)]
    pub mercure_publisher_jwt_key: Option<String>,

    /// The algorithm of publishers' tokens: HS256 or RS256.
    #[arg(long, env = "MERCURE_PUBLISHER_JWT_ALG", default_value = "HS256")]
    pub mercure_publisher_jwt_alg: String,

    /// The key of subscribers' tokens (default: the publishers' key, as the reference hub).
    #[arg(long, env = "MERCURE_SUBSCRIBER_JWT_KEY", hide_env_values = true)]
    pub mercure_subscriber_jwt_key: Option<String>,

    /// The algorithm of subscribers' tokens: HS256 or RS256.
    #[arg(long, env = "MERCURE_SUBSCRIBER_JWT_ALG", default_value = "HS256")]
    pub mercure_subscriber_jwt_alg: String,

    /// Serve the subscriptions API (`/.well-known/mercure/subscriptions...`, for a
    /// subscriber token covering its URL) and publish subscription events.
    #[arg(long, requires = "mercure")]
    pub mercure_subscriptions: bool,

    /// An origin whose pages may use the hub with CORS (credentials included), like
    /// `https://app.example.com`; `*` for any. Repeat the flag for several. The hub's routes
    /// get only these CORS headers, not those of `--cors-origin`.
    #[arg(
        long = "mercure-cors-origin",
        env = "MERCURE_CORS_ORIGINS",
        value_delimiter = ',',
        requires = "mercure"
    )]
    pub mercure_cors_origins: Vec<String>,

    /// Mercure topics under this IRI are the demo's topics: with `https://example.com/`,
    /// `https://example.com/users/1` is the topic `users/1` of the user events.
    #[arg(long, env = "MERCURE_BASE_IRI")]
    pub mercure_base_iri: Option<String>,
}

/// Why the Mercure settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MercureError {
    /// `--mercure` without a publisher key.
    #[error("--mercure needs MERCURE_PUBLISHER_JWT_KEY (or --mercure-publisher-jwt-key)")]
    NoPublisherKey,
    /// An algorithm other than HS256 and RS256.
    #[error("{0}: the JWT algorithm must be HS256 or RS256")]
    Algorithm(String),
    /// An RS256 key that is not the PEM of an RSA public key.
    #[error("{which} key: {source}")]
    Key {
        /// publisher or subscriber.
        which: &'static str,
        /// Why.
        source: sse_core::error::InvalidKey,
    },
}

impl MercureArgs {
    /// The hub the flags ask for, or `None` without `--mercure`. Publishers may use the
    /// `mercureAuthorization` cookie from `publish_origins`.
    pub fn hub(&self, publish_origins: &[String]) -> Result<Option<Mercure>, MercureError> {
        if !self.mercure {
            return Ok(None);
        }
        let publisher = self
            .mercure_publisher_jwt_key
            .as_deref()
            .ok_or(MercureError::NoPublisherKey)?;
        let subscriber = self
            .mercure_subscriber_jwt_key
            .as_deref()
            .unwrap_or(publisher);
        let mut hub = Mercure::new()
            .publisher_key(key(
                publisher,
                &self.mercure_publisher_jwt_alg,
                "publisher",
            )?)
            .subscriber_key(key(
                subscriber,
                &self.mercure_subscriber_jwt_alg,
                "subscriber",
            )?)
            .anonymous(self.mercure_anonymous)
            .publish_origins(publish_origins.iter().cloned())
            .subscriptions(self.mercure_subscriptions)
            // `MERCURE_CORS_ORIGINS="https://a.example, https://b.example"` reads naturally
            // with spaces.
            .cors_origins(
                (self.mercure_cors_origins.iter())
                    .map(|origin| origin.trim().to_owned())
                    .filter(|origin| !origin.is_empty()),
            );
        if let Some(base) = &self.mercure_base_iri {
            hub = hub.base_iri(base.clone());
        }
        Ok(Some(hub))
    }
}

fn key(key: &str, algorithm: &str, which: &'static str) -> Result<JwtKey, MercureError> {
    match algorithm.to_ascii_uppercase().as_str() {
        "HS256" => Ok(JwtKey::hs256(key.as_bytes())),
        "RS256" => {
            JwtKey::rs256_pem(key.as_bytes()).map_err(|source| MercureError::Key { which, source })
        }
        _ => Err(MercureError::Algorithm(algorithm.to_owned())),
    }
}
