//! [`JwtAuth`]: private topics authorized by a JSON Web Token.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::jwks::{Key, Keys};
use super::{Authorize, Grant};
use crate::error::{AuthError, InvalidKey};
use crate::topic::TopicSelector;

/// Authorizes subscribers with a JWT whose `sse.subscribe` claim lists the selectors of the
/// private topics they may see (like Mercure's `mercure.subscribe`):
///
/// ```json
/// { "sse": { "subscribe": ["users/42/private", "orders/{id}"] }, "exp": 1767225600 }
/// ```
///
/// The token is read from `Authorization: Bearer <token>`, else from the cookie named by
/// [`JwtAuth::cookie`] (default `sse_token`), else, if enabled with
/// [`JwtAuth::query_parameter`], from `?access_token=` (which ends up in access logs: prefer
/// the cookie for `EventSource`, which cannot set headers). `exp` is required unless
/// [`JwtAuth::require_exp`] says otherwise; an open stream ends when its token expires. A
/// token whose `nbf` is still ahead is refused; [`JwtAuth::leeway`] applies to both.
/// [`JwtAuth::issuer`] and [`JwtAuth::audience`] check `iss` and `aud`.
///
/// ```
/// use sse_core::{Broadcaster, auth::JwtAuth};
///
/// let events = Broadcaster::builder()
///     .authorizer(JwtAuth::hs256(b"a secret of at least 32 bytes, please"))
///     .build();
/// ```
pub struct JwtAuth {
    keys: Keys,
    validation: Validation,
    cookie: Option<String>,
    query: bool,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.validation.algorithms)
            .field("keys", &self.keys.len())
            .field("cookie", &self.cookie)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Tokens signed with HMAC-SHA256 and `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(Keys::One(Key::new(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        )))
    }

    /// Tokens signed with RSA (RS256); `public_key_pem` is the PEM of the public key.
    ///
    /// # Errors
    ///
    /// [`InvalidKey::Pem`] when `public_key_pem` is not the PEM of an RSA public key.
    pub fn rs256_pem(public_key_pem: &[u8]) -> Result<Self, InvalidKey> {
        let key = DecodingKey::from_rsa_pem(public_key_pem)
            .map_err(|err| InvalidKey::Pem(Box::new(err)))?;
        Ok(Self::new(Keys::One(Key::new(key, Algorithm::RS256))))
    }

    /// Tokens signed with any signature key of a JWK set (RFC 7517), given as its JSON, such
    /// as an identity provider's `jwks_uri` document. A token names its key with the `kid`
    /// header (a set of one key also accepts tokens without `kid`) and must use that key's
    /// `alg` (RS256 for an RSA key without `alg`). Encryption and symmetric keys are ignored.
    ///
    /// ```
    /// let jwks = r#"{"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256", "alg": "ES256",
    ///     "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    ///     "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    /// let auth = sse_core::auth::JwtAuth::jwks(jwks)?;
    /// # Ok::<(), sse_core::error::InvalidKey>(())
    /// ```
    ///
    /// Fetching and refreshing the set is up to the application: build a new `JwtAuth` (and
    /// broadcaster) when the provider rotates its keys.
    ///
    /// # Errors
    ///
    /// [`InvalidKey::JwkSet`] when `json` is not a JWK set, [`InvalidKey::Jwk`] for a key of
    /// a supported type that cannot be read, [`InvalidKey::NoUsableKey`] when no key of the
    /// set can verify signatures.
    pub fn jwks(json: &str) -> Result<Self, InvalidKey> {
        Ok(Self::new(Keys::from_jwk_set(json)?))
    }

    fn new(keys: Keys) -> Self {
        let mut validation = Validation {
            algorithms: keys.algorithms(),
            ..Validation::default()
        };
        // The stream ends at `exp` exactly; a skew allowance is opt-in with `leeway`.
        validation.leeway = 0;
        // A token issued for later is not valid yet; the same leeway applies as to `exp`.
        validation.validate_nbf = true;
        validation.validate_aud = false;
        Self {
            keys,
            validation,
            cookie: Some("sse_token".to_owned()),
            query: false,
        }
    }

    /// The cookie to read the token from; `None` to ignore cookies. Default `sse_token`.
    #[must_use]
    pub fn cookie(mut self, name: impl Into<Option<String>>) -> Self {
        self.cookie = name.into();
        self
    }

    /// Also reads the token from the `access_token` query parameter. Default off.
    #[must_use]
    pub fn query_parameter(mut self, enabled: bool) -> Self {
        self.query = enabled;
        self
    }

    /// Whether tokens must carry `exp`. Default true.
    #[must_use]
    pub fn require_exp(mut self, required: bool) -> Self {
        if required {
            self.validation
                .required_spec_claims
                .insert("exp".to_owned());
        } else {
            self.validation.required_spec_claims.remove("exp");
        }
        self
    }

    /// Accepts only tokens whose `iss` claim is one of `issuers` (the claim is then required).
    /// Default: `iss` is not checked.
    #[must_use]
    pub fn issuer<S: ToString>(mut self, issuers: impl IntoIterator<Item = S>) -> Self {
        let issuers: Vec<String> = issuers.into_iter().map(|s| s.to_string()).collect();
        self.validation.set_issuer(&issuers);
        self.validation
            .required_spec_claims
            .insert("iss".to_owned());
        self
    }

    /// Accepts only tokens whose `aud` claim names one of `audiences` (the claim is then
    /// required). Default: `aud` is not checked.
    #[must_use]
    pub fn audience<S: ToString>(mut self, audiences: impl IntoIterator<Item = S>) -> Self {
        let audiences: Vec<String> = audiences.into_iter().map(|s| s.to_string()).collect();
        self.validation.set_audience(&audiences);
        self.validation.validate_aud = true;
        self.validation
            .required_spec_claims
            .insert("aud".to_owned());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`. Default 0.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self
    }

    /// The token, if the request carries one; an `Authorization` header that is not a bearer
    /// token is an error.
    fn token(&self, req: &HttpRequest) -> Result<Option<String>, AuthError> {
        if let Some(value) = req.headers().get(header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| AuthError::invalid("the Authorization header is not ASCII"))?;
            return match value.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Ok(Some(token.trim().to_owned()))
                }
                _ => Err(AuthError::invalid(
                    "the Authorization header must be `Bearer <token>`",
                )),
            };
        }
        if let Some(cookie) = self.cookie.as_deref().and_then(|name| req.cookie(name)) {
            return Ok(Some(cookie.value().to_owned()));
        }
        if self.query && req.query_string().contains("access_token") {
            let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
                .map_err(|_| AuthError::invalid("unreadable query string"))?;
            if let Some((_, token)) = pairs
                .into_inner()
                .into_iter()
                .find(|(k, _)| k == "access_token")
            {
                return Ok(Some(token));
            }
        }
        Ok(None)
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    #[serde(default)]
    sse: SseClaim,
}

#[derive(Default, Deserialize)]
struct SseClaim {
    #[serde(default)]
    subscribe: Vec<String>,
}

impl Authorize for JwtAuth {
    /// `bearer`, and `cookie` and `query` where the token is also read from there.
    fn security_schemes(&self) -> serde_json::Map<String, serde_json::Value> {
        const CLAIM: &str = "A JWT whose `sse.subscribe` claim lists the selectors of the \
                             private topics it allows";
        let mut schemes = serde_json::Map::new();
        schemes.insert(
            "bearer".to_owned(),
            serde_json::json!({
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": format!("{CLAIM}, in `Authorization: Bearer <token>`."),
            }),
        );
        if let Some(cookie) = &self.cookie {
            schemes.insert(
                "cookie".to_owned(),
                serde_json::json!({
                    "type": "httpApiKey",
                    "in": "cookie",
                    "name": cookie,
                    "description": format!(
                        "{CLAIM}, in the `{cookie}` cookie (for `EventSource`, which cannot \
                         set headers)."
                    ),
                }),
            );
        }
        if self.query {
            schemes.insert(
                "query".to_owned(),
                serde_json::json!({
                    "type": "httpApiKey",
                    "in": "query",
                    "name": "access_token",
                    "description": format!("{CLAIM}, in `?access_token=`."),
                }),
            );
        }
        schemes
    }

    fn authorize(&self, req: &HttpRequest) -> Result<Option<Grant>, AuthError> {
        let Some(token) = self.token(req)? else {
            return Ok(None);
        };
        let key = self.keys.for_token(&token)?;
        // jsonwebtoken wants every algorithm of the validation in the key's family: a JWK set
        // mixing RSA and EC keys checks each token against its own key's algorithm only.
        let validation = if self.validation.algorithms == [key.algorithm] {
            Cow::Borrowed(&self.validation)
        } else {
            let mut validation = self.validation.clone();
            validation.algorithms = vec![key.algorithm];
            Cow::Owned(validation)
        };
        let claims = jsonwebtoken::decode::<Claims>(&token, &key.key, &validation)
            .map_err(|err| AuthError::invalid(err.to_string()))?
            .claims;
        let topics = claims
            .sse
            .subscribe
            .iter()
            .map(|s| TopicSelector::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| AuthError::invalid(format!("sse.subscribe claim: {err}")))?;
        let expires_at = claims.exp.and_then(|exp| {
            UNIX_EPOCH.checked_add(Duration::from_secs(
                exp.saturating_add(self.validation.leeway),
            ))
        });
        let mut grant = Grant::new(topics);
        grant.expires_at = expires_at;
        if expires_at.is_some_and(|at| at <= SystemTime::now()) {
            return Err(AuthError::invalid("the token has expired"));
        }
        Ok(Some(grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{json, Value};

    const SECRET: &[u8] = b"a secret of at least 32 bytes, please";

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn claims(extra: Value) -> Value {
        let mut claims = json!({ "sse": { "subscribe": ["users/1/private"] }, "exp": now() + 600 });
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        claims
    }

    fn check(auth: &JwtAuth, claims: &Value) -> Result<Option<Grant>, AuthError> {
        let token = encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("sign");
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_http_request();
        auth.authorize(&req)
    }

    #[test]
    fn a_valid_token_is_accepted() {
        let grant = check(&JwtAuth::hs256(SECRET), &claims(json!({})));
        assert!(matches!(grant, Ok(Some(_))), "{grant:?}");
    }

    #[test]
    fn token_not_yet_valid_is_refused() {
        let early = claims(json!({ "nbf": now() + 3600 }));
        assert!(check(&JwtAuth::hs256(SECRET), &early).is_err());
    }

    #[test]
    fn nbf_within_the_leeway_is_accepted_beyond_it_refused() {
        let auth = JwtAuth::hs256(SECRET).leeway(Duration::from_secs(60));
        assert!(check(&auth, &claims(json!({ "nbf": now() + 30 }))).is_ok());
        assert!(check(&auth, &claims(json!({ "nbf": now() + 120 }))).is_err());
    }

    #[test]
    fn exp_passed_within_the_leeway_is_accepted_beyond_it_refused() {
        let auth = JwtAuth::hs256(SECRET).leeway(Duration::from_secs(60));
        assert!(check(&auth, &claims(json!({ "exp": now() - 30 }))).is_ok());
        assert!(check(&auth, &claims(json!({ "exp": now() - 120 }))).is_err());
        // Without leeway, an expired token is refused.
        let strict = JwtAuth::hs256(SECRET);
        assert!(check(&strict, &claims(json!({ "exp": now() - 2 }))).is_err());
    }

    #[test]
    fn issuer_is_checked_when_configured() {
        let auth = JwtAuth::hs256(SECRET).issuer(["https://auth.example"]);
        assert!(check(&auth, &claims(json!({ "iss": "https://auth.example" }))).is_ok());
        assert!(check(&auth, &claims(json!({ "iss": "https://evil.example" }))).is_err());
        assert!(check(&auth, &claims(json!({}))).is_err(), "iss required");
    }

    #[test]
    fn audience_is_checked_when_configured() {
        let auth = JwtAuth::hs256(SECRET).audience(["sse"]);
        assert!(check(&auth, &claims(json!({ "aud": "sse" }))).is_ok());
        assert!(check(&auth, &claims(json!({ "aud": ["api", "sse"] }))).is_ok());
        assert!(check(&auth, &claims(json!({ "aud": "api" }))).is_err());
        assert!(check(&auth, &claims(json!({}))).is_err(), "aud required");
    }

    /// Claims of every JSON shape, signed: the authorizer answers (grant or refusal), never
    /// panics.
    mod claims_from_outside {
        use proptest::prelude::*;

        use super::*;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)),
                "[a-z/{}*]{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn any_claims_get_an_answer(sse in json(), exp in json(), nbf in json()) {
                let claims = json!({ "sse": sse, "exp": exp, "nbf": nbf });
                let _ = check(&JwtAuth::hs256(SECRET), &claims);
                let subscribe = json!({ "sse": { "subscribe": sse }, "exp": now() + 60 });
                let _ = check(&JwtAuth::hs256(SECRET), &subscribe);
            }
        }
    }
}
