//! The users API. Each change is written with its event in one transaction
//! (`#[emit_event(.., transactional)]`): a request that fails changes and publishes nothing,
//! and a committed change always has its event, even if the process dies right after.

use actix_web::http::StatusCode;
use actix_web::web::{self, Json};
use serde::{Deserialize, Serialize};
use sse_core::emit_event;
use sse_core::sql::Tx;

use crate::db::{self, Db};
use crate::error::ApiError;
use crate::login::Viewer;
use crate::public::{UserPublic, UserView};

/// The longest username accepted, in characters.
pub const MAX_USERNAME: usize = 64;
/// The longest email address accepted, in bytes (RFC 5321).
pub const MAX_EMAIL: usize = 254;

/// The body of `POST /api/v1/users`.
#[derive(Debug, Deserialize)]
pub struct NewUser {
    /// 1 to 64 characters after trimming; unique regardless of case.
    pub username: String,
    /// An address like `name@example.com`.
    pub email: String,
}

/// The body of `PUT /api/v1/users/{id}`: the fields to change, at least one.
#[derive(Debug, Default, Deserialize)]
pub struct UserChanges {
    /// A new username, if it changes.
    pub username: Option<String>,
    /// A new email, if it changes.
    pub email: Option<String>,
}

/// The body of `PUT /api/v1/users/{id}/email`.
#[derive(Debug, Deserialize)]
pub struct NewEmail {
    /// An address like `name@example.com`.
    pub email: String,
}

/// The payload of the private `user_email_changed` event.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EmailChanged {
    /// The user whose address changed.
    pub id: i64,
    /// The new address.
    pub email: String,
}

/// The payload of `DELETE /api/v1/users/{id}` and of the `user_deleted` event.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Deleted {
    /// The id of the deleted user.
    pub id: i64,
}

/// `GET /api/v1/users`: everyone's public fields.
pub async fn list(pool: web::Data<Db>) -> Result<Json<Vec<UserPublic>>, ApiError> {
    let users = db::list(&pool).await?;
    Ok(Json(users.iter().map(UserPublic::from).collect()))
}

/// `GET /api/v1/users/{id}`: with the email when the request carries the user's own token.
pub async fn get(
    pool: web::Data<Db>,
    id: web::Path<i64>,
    viewer: Viewer,
) -> Result<Json<UserView>, ApiError> {
    let id = id.into_inner();
    db::get(&pool, id)
        .await?
        .map(|user| Json(UserView::of(user, viewer.0)))
        .ok_or_else(|| ApiError::NotFound(id.to_string()))
}

/// `POST /api/v1/users`: 201 with the new user (and its email: the caller just sent it).
/// Subscribers get its public fields.
#[emit_event("user_created", topic = "users/{id}", payload = UserPublic::from, transactional)]
pub async fn create(tx: Tx, body: Json<NewUser>) -> Result<(Json<UserView>, StatusCode), ApiError> {
    let username = username(&body.username)?;
    let email = email(&body.email)?;
    let user = db::insert(&tx, username, email).await?;
    tracing::info!(id = user.id, username, "user created");
    Ok((Json(UserView::owned(user)), StatusCode::CREATED))
}

/// `PUT /api/v1/users/{id}`: changes the fields present in the body. The response has the
/// email for the user's own token; subscribers get the public fields.
#[emit_event("user_updated", topic = "users/{id}", payload = UserPublic::from, transactional)]
pub async fn update(
    tx: Tx,
    id: web::Path<i64>,
    body: Json<UserChanges>,
    viewer: Viewer,
) -> Result<Json<UserView>, ApiError> {
    let id = id.into_inner();
    if body.username.is_none() && body.email.is_none() {
        return Err(ApiError::Invalid(
            "nothing to update: send `username`, `email` or both".into(),
        ));
    }
    let username = body.username.as_deref().map(username).transpose()?;
    let email = body.email.as_deref().map(email).transpose()?;
    let user = db::update(&tx, id, username, email)
        .await?
        .ok_or_else(|| ApiError::NotFound(id.to_string()))?;
    tracing::info!(id, username = user.username, "user updated");
    Ok(Json(UserView::of(user, viewer.0)))
}

/// `DELETE /api/v1/users/{id}`: `{"id": N}`.
#[emit_event("user_deleted", topic = "users/{id}", transactional)]
pub async fn delete(tx: Tx, id: web::Path<i64>) -> Result<Json<Deleted>, ApiError> {
    let id = id.into_inner();
    if !db::delete(&tx, id).await? {
        return Err(ApiError::NotFound(id.to_string()));
    }
    tracing::info!(id, "user deleted");
    Ok(Json(Deleted { id }))
}

/// `PUT /api/v1/users/{id}/email`: changes the address. The new address is published only
/// to its owner's streams (topic `users/{id}/private`, private), not to every page.
#[emit_event(
    "user_email_changed",
    topic = "users/{id}/private",
    private,
    transactional
)]
pub async fn update_email(
    tx: Tx,
    id: web::Path<i64>,
    body: Json<NewEmail>,
) -> Result<Json<EmailChanged>, ApiError> {
    let id = id.into_inner();
    let email = email(&body.email)?;
    let user = db::update(&tx, id, None, Some(email))
        .await?
        .ok_or_else(|| ApiError::NotFound(id.to_string()))?;
    tracing::info!(id, "email changed");
    Ok(Json(EmailChanged {
        id,
        email: user.email,
    }))
}

/// The username to store: trimmed, not empty, not too long, printable.
pub fn username(raw: &str) -> Result<&str, ApiError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::Invalid("username must not be empty".into()));
    }
    if name.chars().count() > MAX_USERNAME {
        return Err(ApiError::Invalid(format!(
            "username must be at most {MAX_USERNAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::Invalid(
            "username must not contain control characters".into(),
        ));
    }
    Ok(name)
}

/// The email to store: trimmed, of the form `local@domain.tld`, without spaces.
///
/// Deliberately loose (the only real check is sending a mail), but it refuses what is
/// certainly not an address.
pub fn email(raw: &str) -> Result<&str, ApiError> {
    let email = raw.trim();
    let invalid = || ApiError::Invalid(format!("{email:?} is not a valid email address"));
    if email.len() > MAX_EMAIL {
        return Err(ApiError::Invalid(format!(
            "email must be at most {MAX_EMAIL} bytes"
        )));
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let plausible = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(email)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sse_core::sql::EventLog;
    use sse_core::testing::expect_event;

    #[test]
    fn usernames() {
        assert_eq!(username("  ada ").ok(), Some("ada"));
        assert!(username(&"é".repeat(MAX_USERNAME)).is_ok());
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(MAX_USERNAME + 1)] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        for good in [
            "a@b.co",
            " ada@example.com ",
            "first.last+tag@sub.example.org",
        ] {
            assert!(email(good).is_ok(), "{good:?}");
        }
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "ada@example..com",
            "ada@exa mple.com",
            "a da@example.com",
            "ada@example.com.",
            &long,
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    async fn pool() -> (web::Data<Db>, EventLog) {
        let db = match db::connect("sqlite::memory:").await {
            Ok(db) => db,
            Err(err) => panic!("in-memory database: {err}"),
        };
        let log = db
            .event_log()
            .await
            .expect("the migrations made the event log");
        (web::Data::new(db), log)
    }

    async fn tx(log: &EventLog) -> Tx {
        log.begin().await.expect("a transaction")
    }

    /// The events committed to the log's table, oldest first.
    async fn logged(db: &Db) -> Vec<String> {
        let Db::Sqlite(pool) = db else {
            panic!("the tests run on SQLite")
        };
        sqlx::query_scalar("SELECT name FROM sse_events ORDER BY seq")
            .fetch_all(pool)
            .await
            .expect("the event log table")
    }

    fn new_user(username: &str, email: &str) -> Json<NewUser> {
        Json(NewUser {
            username: username.into(),
            email: email.into(),
        })
    }

    #[tokio::test]
    async fn successful_changes_emit_their_event() {
        let (pool, log) = pool().await;
        let (created, events) =
            sse_core::testing::capture(create(tx(&log).await, new_user(" ada ", "a@b.co"))).await;
        let (Json(user), status) = created.expect("created");
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(user.user.username, "ada");
        assert_eq!(
            user.email.as_deref(),
            Some("a@b.co"),
            "the creator's response"
        );
        let user = user.user;
        assert_eq!(events.len(), 1);
        expect_event("user_created")
            .topic(&format!("users/{}", user.id))
            .public()
            .payload_contains(json!({"username": "ada", "version": 1}))
            .without_field("email")
            .in_(&events);

        let changes = Json(UserChanges {
            username: Some("grace".into()),
            email: None,
        });
        let (updated, events) = sse_core::testing::capture(update(
            tx(&log).await,
            web::Path::from(user.id),
            changes,
            Viewer(None),
        ))
        .await;
        assert!(
            updated.expect("updated").email.is_none(),
            "anonymous caller"
        );
        expect_event("user_updated")
            .public()
            .payload_contains(json!({"username": "grace", "version": 2}))
            .without_field("email")
            .in_(&events);

        let (deleted, events) =
            sse_core::testing::capture(delete(tx(&log).await, web::Path::from(user.id))).await;
        assert!(deleted.is_ok());
        assert_eq!(events[0].name, "user_deleted");
        assert_eq!(events[0].payload, json!({ "id": user.id }));
        assert_eq!(
            logged(&pool).await,
            ["user_created", "user_updated", "user_deleted"],
            "each change committed with its event"
        );
    }

    #[tokio::test]
    async fn failures_change_nothing_and_emit_nothing() {
        let (pool, log) = pool().await;
        let (ok, _) =
            sse_core::testing::capture(create(tx(&log).await, new_user("ada", "a@b.co"))).await;
        assert!(ok.is_ok());
        let (result, events) = sse_core::testing::capture(async {
            let change = |username: Option<&str>| {
                Json(UserChanges {
                    username: username.map(Into::into),
                    email: None,
                })
            };
            [
                create(tx(&log).await, new_user("", "a@b.co"))
                    .await
                    .is_err(),
                create(tx(&log).await, new_user("x", "nope")).await.is_err(),
                create(tx(&log).await, new_user("ADA", "c@d.co"))
                    .await
                    .is_err(),
                update(
                    tx(&log).await,
                    web::Path::from(1),
                    change(None),
                    Viewer(None),
                )
                .await
                .is_err(),
                update(
                    tx(&log).await,
                    web::Path::from(99),
                    change(Some("z")),
                    Viewer(None),
                )
                .await
                .is_err(),
                delete(tx(&log).await, web::Path::from(99)).await.is_err(),
            ]
        })
        .await;
        assert_eq!(result, [true; 6]);
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(logged(&pool).await, ["user_created"]);
        assert_eq!(db::list(&pool).await.expect("users").len(), 1);
    }
}
