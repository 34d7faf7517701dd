//! The hub's JSON Web Tokens: the keys publishers' and subscribers' tokens are checked with,
//! where a request carries its token, and the `mercure` claim.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::HttpRequest;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::InvalidKey;

/// The cookie a browser sends its token in, as Mercure names it.
pub const COOKIE: &str = "mercureAuthorization";

/// A key that checks the signature of publishers' or subscribers' tokens: HS256 with a
/// secret, or RS256 with an RSA public key. Its `Debug` never shows the key.
///
/// ```
/// use sse_core::mercure::JwtKey;
///
/// let key = JwtKey::hs256(b"!ChangeThisMercureHubJWTSecretKey!");
/// assert!(JwtKey::rs256_pem(b"not a key").is_err());
/// ```
#[derive(Clone)]
pub struct JwtKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl JwtKey {
    /// Tokens signed with HMAC-SHA256 and `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
        }
    }

    /// Tokens signed with RS256; `public_key_pem` is the PEM of the RSA public key.
    ///
    /// # Errors
    ///
    /// [`InvalidKey::Pem`] when `public_key_pem` is not the PEM of an RSA public key.
    pub fn rs256_pem(public_key_pem: &[u8]) -> Result<Self, InvalidKey> {
        let key = DecodingKey::from_rsa_pem(public_key_pem)
            .map_err(|err| InvalidKey::Pem(Box::new(err)))?;
        Ok(Self {
            key,
            algorithm: Algorithm::RS256,
        })
    }

    /// The `mercure` claim of a token signed with this key, and when it expires.
    pub(crate) fn verify(&self, token: &str) -> Result<Verified, String> {
        let mut validation = Validation::new(self.algorithm);
        // As the reference hub: `exp` is checked when present, not required.
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &validation)
            .map_err(|err| format!("invalid token: {err}"))?
            .claims;
        let expires_at = claims
            .exp
            .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp)));
        Ok(Verified {
            claim: claims.mercure.unwrap_or_default(),
            expires_at,
        })
    }
}

/// A token's verified content.
pub(crate) struct Verified {
    pub(crate) claim: MercureClaim,
    pub(crate) expires_at: Option<SystemTime>,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    mercure: Option<MercureClaim>,
}

/// The `mercure` claim: the selectors a token may publish to and subscribe to, and the
/// subscriber's payload for the subscriptions API.
#[derive(Default, Deserialize)]
pub(crate) struct MercureClaim {
    #[serde(default)]
    pub(crate) publish: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) subscribe: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) payload: Option<serde_json::Value>,
}

/// Where a token came from: a cookie is sent by the browser on its own, so a publish with
/// one must come from an allowed origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Header,
    Cookie,
    Query,
}

/// The request's token: `Authorization: Bearer`, else (for subscribers) the `authorization`
/// query parameter, else the `mercureAuthorization` cookie.
pub(crate) fn token(
    req: &HttpRequest,
    query: Option<&str>,
) -> Result<Option<(String, Source)>, String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| "the Authorization header is not ASCII".to_owned())?;
        return match value.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                Ok(Some((token.trim().to_owned(), Source::Header)))
            }
            _ => Err("the Authorization header must be `Bearer <token>`".to_owned()),
        };
    }
    if let Some(token) = query.filter(|t| !t.is_empty()) {
        return Ok(Some((token.to_owned(), Source::Query)));
    }
    Ok(req
        .cookie(COOKIE)
        .map(|c| (c.value().to_owned(), Source::Cookie)))
}
