//! **Demo only**: `POST /api/v1/login` hands out a token for any user id, without a password,
//! so the private `user_email_changed` event can be tried from a terminal; it exists only
//! with `--demo-login`. A real app issues such tokens from its own authentication.
//! `GET /api/v1/login` answers 204 then (404 without the flag): the page asks it to decide
//! whether to offer "View as user…".
//!
//! The same tokens tell who is asking ([`Viewer`]): a user's own responses include its email.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{self, Json};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sse_core::{auth::JwtAuth, error::InvalidTopic, TopicSelector};

use crate::db::{self, Db};
use crate::error::ApiError;

/// How long a demo token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The private topics: each user's own `users/{id}/private`.
pub const PRIVATE_TOPICS: &str = "users/{id}/private";

/// The HS256 secret shared by the login endpoint (signing) and the broadcaster (checking).
#[derive(Clone)]
pub struct LoginKey(Vec<u8>);

/// The shortest HS256 secret accepted: 32 bytes, the size of the hash (RFC 7518, 3.2).
pub const MIN_SECRET_LEN: usize = 32;

impl LoginKey {
    /// A key from a configured secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    /// A key from a configured secret, refused when shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn from_secret(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "--jwt-secret must be at least {MIN_SECRET_LEN} bytes long (got {}): a short \
                 HS256 secret can be guessed offline from any token",
                secret.len()
            ));
        }
        Ok(Self::new(secret.as_bytes()))
    }

    /// A key made up for this run: tokens do not survive a restart.
    pub fn random() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // Each `RandomState` is seeded from the OS's randomness; a demo needs nothing more.
        let secret: String = (0..4)
            .map(|_| {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_nanos(),
                );
                format!("{:016x}", h.finish())
            })
            .collect();
        Self(secret.into_bytes())
    }

    /// The authorizer that checks the tokens this key signs.
    pub fn authorizer(&self) -> JwtAuth {
        JwtAuth::hs256(&self.0)
    }

    /// A token for `sub` allowing `topics`, valid for `lifetime` (such as the inspector's).
    pub fn token(
        &self,
        sub: &str,
        topics: &[&str],
        lifetime: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let exp = (SystemTime::now() + lifetime)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = json!({ "sub": sub, "exp": exp, "sse": { "subscribe": topics } });
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(&self.0),
        )
    }

    /// The selector of the private topics, for `BroadcasterBuilder::private_topics`.
    pub fn private_topics() -> Result<TopicSelector, InvalidTopic> {
        TopicSelector::parse(PRIVATE_TOPICS)
    }
}

/// Registers `POST /api/v1/login` (demo only, no password) with `key`, and `GET
/// /api/v1/login`, which says it is there, for `App::configure`.
pub fn config(key: LoginKey) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(key)).service(
            web::resource("/api/v1/login")
                .route(web::post().to(login))
                .route(web::get().to(available)),
        );
    }
}

/// Registers only `key`, so [`Viewer`] knows tokens; no login endpoint.
pub fn key_config(key: LoginKey) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(key));
    }
}

/// Who is asking: the user id of a valid `Authorization: Bearer` token signed with the
/// [`LoginKey`], or `None` (no token, an invalid one, or no key registered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer(pub Option<i64>);

impl FromRequest for Viewer {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Viewer(viewer(req))))
    }
}

fn viewer(req: &HttpRequest) -> Option<i64> {
    #[derive(Deserialize)]
    struct Claims {
        sub: String,
    }
    let key = req.app_data::<web::Data<LoginKey>>()?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let claims = jsonwebtoken::decode::<Claims>(
        token.trim(),
        &DecodingKey::from_secret(&key.0),
        &Validation::new(Algorithm::HS256),
    )
    .ok()?;
    claims.claims.sub.parse().ok()
}

/// `GET /api/v1/login`: 204, the demo login is there (served only with `--demo-login`).
async fn available() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// The body of `POST /api/v1/login`.
#[derive(Debug, Deserialize)]
pub struct Login {
    /// The user to log in as.
    pub user_id: i64,
}

/// The answer of `POST /api/v1/login`.
#[derive(Debug, Serialize)]
pub struct Token {
    /// A JWT allowing `users/{user_id}/private`, valid for [`TOKEN_LIFETIME`].
    pub token: String,
}

/// `POST /api/v1/login` (**demo only: no password**): `{"user_id": N}` → `{"token": "..."}`.
pub async fn login(
    pool: web::Data<Db>,
    key: web::Data<LoginKey>,
    body: Json<Login>,
) -> Result<Json<Token>, ApiError> {
    let id = body.user_id;
    if db::get(&pool, id).await?.is_none() {
        return Err(ApiError::NotFound(id.to_string()));
    }
    let exp = (SystemTime::now() + TOKEN_LIFETIME)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = json!({
        "sub": id.to_string(),
        "exp": exp,
        "sse": { "subscribe": [format!("users/{id}/private")] },
    });
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(&key.0),
    )
    .map_err(ApiError::Token)?;
    tracing::info!(id, "demo login");
    Ok(Json(Token { token }))
}
