//! A topic field the projection lacks (`{email}` here) compiles: templates are filled from the
//! serialized payload at run time, where the event fails to publish (logged, counted). With
//! feature `schema` and a payload that derives `JsonSchema`, `testing::check_catalogue()`
//! reports it before that.
use actix_web::web;
use sse_core::emit_event;

#[derive(serde::Serialize)]
struct User {
    id: u64,
}

#[derive(serde::Serialize)]
struct UserPublic {
    id: u64,
}

fn public(user: &User) -> UserPublic {
    UserPublic { id: user.id }
}

#[emit_event("user_updated", topic = "users/{email}", payload = public)]
async fn handler() -> web::Json<User> {
    web::Json(User { id: 1 })
}

fn main() {
    let _ = handler;
}
