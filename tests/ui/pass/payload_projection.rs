//! `payload = path`: what is published is the path's function applied to `&T`, and the
//! topic is filled from it; the response is unchanged.
use actix_web::http::StatusCode;
use actix_web::{web, Either};
use sse_core::emit_event;

struct User {
    id: u64,
    email: String,
}

#[derive(serde::Serialize)]
struct UserPublic {
    id: u64,
}

impl From<&User> for UserPublic {
    fn from(user: &User) -> Self {
        UserPublic { id: user.id }
    }
}

fn public(user: &User) -> UserPublic {
    UserPublic::from(user)
}

mod projections {
    pub fn id_only(user: &super::User) -> u64 {
        user.id
    }
}

// `User` itself need not be `Serialize`: only the projection is published.
#[emit_event("user_updated", topic = "users/{id}", payload = UserPublic::from)]
async fn from_impl() -> Result<web::Json<User>, actix_web::Error> {
    Ok(web::Json(User { id: 1, email: "a@b.c".into() }))
}

#[emit_event("user_created", topic = "users/{id}", payload = public)]
async fn plain_fn() -> Result<(web::Json<User>, StatusCode), actix_web::Error> {
    Ok((web::Json(User { id: 1, email: String::new() }), StatusCode::CREATED))
}

#[emit_event("user_seen", payload = projections::id_only)]
async fn module_path() -> Option<web::Json<User>> {
    None
}

#[emit_event("either", payload = public)]
async fn either() -> Either<web::Json<User>, Result<web::Json<User>, actix_web::Error>> {
    Either::Left(web::Json(User { id: 2, email: String::new() }))
}

// With and without a projection on one handler: each event gets its own payload.
#[derive(serde::Serialize)]
struct Full {
    id: u64,
    email: String,
}

impl From<&Full> for UserPublic {
    fn from(user: &Full) -> Self {
        UserPublic { id: user.id }
    }
}

#[emit_event("user_changed", topic = "users/{id}", payload = UserPublic::from)]
#[emit_event("user_changed_private", topic = "users/{id}/private", private)]
async fn both() -> web::Json<Full> {
    web::Json(Full { id: 3, email: String::new() })
}

// A generic handler: published the same way; catalogued without its payload type.
#[emit_event("generic", payload = UserPublic::from)]
async fn generic<T: Send>(_extra: T) -> web::Json<User> {
    web::Json(User { id: 4, email: String::new() })
}

fn main() {
    let _ = (from_impl, plain_fn, module_path, either, both, generic::<u8>);
    let _ = |u: &User| u.email.len();
}
