//! Every failure the API reports, as a status code and a `{"error": "..."}` body.

use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;

/// An API failure. Client errors are answered with what is wrong; server errors are logged and
/// answered without details.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body is well-formed JSON but a field is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The request body is not JSON of the expected shape.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is not `application/json`.
    #[error("the request body must be JSON, sent with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The request body exceeds the configured limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No such user.
    #[error("no user with id {0}")]
    NotFound(String),
    /// The username is taken.
    #[error("username {0:?} is already taken")]
    Conflict(String),
    /// The database failed.
    #[error("internal error")]
    Internal(#[source] sqlx::Error),
    /// A token could not be signed.
    #[error("internal error")]
    Token(#[source] jsonwebtoken::errors::Error),
    /// The change and its event were not committed (neither was).
    #[error("the change was not saved")]
    Unsaved(#[source] sse_core::sql::TxError),
}

impl From<sse_core::sql::TxError> for ApiError {
    fn from(err: sse_core::sql::TxError) -> Self {
        Self::Unsaved(err)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err)
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::UsernameTaken(name) => Self::Conflict(name),
            DbError::Sqlx(err) => Self::Internal(err),
            DbError::Tx(err) => Self::Unsaved(err),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) | Self::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unsaved(err) => actix_web::ResponseError::status_code(err),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(err) => tracing::error!(%err, "database error"),
            Self::Token(err) => tracing::error!(%err, "cannot sign a token"),
            Self::Unsaved(err) => tracing::error!(%err, "change not saved"),
            _ => {}
        }
        HttpResponse::build(self.status_code()).json(json!({ "error": self.to_string() }))
    }
}

/// The largest request body accepted, in bytes.
pub const JSON_LIMIT: usize = 16 * 1024;

/// Makes `web::Json` extraction failures JSON errors with the right status.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .error_handler(|err, _req: &HttpRequest| {
            let api = match &err {
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
                JsonPayloadError::OverflowKnownLength { limit, .. }
                | JsonPayloadError::Overflow { limit } => ApiError::TooLarge { limit: *limit },
                JsonPayloadError::Deserialize(err) if err.is_data() => {
                    ApiError::BadRequest(format!("invalid request body: {err}"))
                }
                JsonPayloadError::Deserialize(err) => {
                    ApiError::BadRequest(format!("malformed JSON: {err}"))
                }
                other => ApiError::BadRequest(format!("unreadable request body: {other}")),
            };
            api.into()
        })
}

/// Makes a non-numeric id in a path a JSON 404, like any other unknown user.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err: PathError, req: &HttpRequest| {
        let id = req.match_info().get("id").unwrap_or_default();
        ApiError::NotFound(format!("{id:?}")).into()
    })
}
