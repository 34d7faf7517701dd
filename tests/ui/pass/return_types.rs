//! Every return type that works out of the box, and a user type that opts in.
use actix_web::http::StatusCode;
use actix_web::{body::BoxBody, web, Either, HttpRequest, HttpResponse, Responder};
use sse_core::{emit_event, EventPayload, PayloadWriter};

#[derive(serde::Serialize)]
struct User {
    id: u64,
}

#[emit_event("json")]
async fn json() -> web::Json<User> {
    web::Json(User { id: 1 })
}

#[emit_event("result")]
async fn result() -> Result<web::Json<User>, actix_web::Error> {
    let id: u64 = "1".parse().map_err(actix_web::error::ErrorBadRequest)?;
    Ok(web::Json(User { id }))
}

#[emit_event("result_alias")]
async fn result_alias() -> actix_web::Result<web::Json<User>> {
    Ok(web::Json(User { id: 1 }))
}

#[emit_event("with_status")]
async fn with_status() -> Result<(web::Json<User>, StatusCode), actix_web::Error> {
    Ok((web::Json(User { id: 1 }), StatusCode::CREATED))
}

#[emit_event("option")]
async fn option() -> Option<web::Json<User>> {
    None
}

#[emit_event("either")]
async fn either() -> Either<web::Json<User>, web::Json<Vec<User>>> {
    Either::Right(web::Json(vec![]))
}

struct Created(User);

impl Responder for Created {
    type Body = BoxBody;
    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        HttpResponse::Created().json(&self.0)
    }
}

impl EventPayload for Created {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        out.serialize(&self.0);
    }
}

#[emit_event("custom")]
async fn custom() -> Result<Created, actix_web::Error> {
    Ok(Created(User { id: 1 }))
}

fn main() {
    let _ = actix_web::App::new()
        .route("/1", web::post().to(json))
        .route("/2", web::post().to(result))
        .route("/3", web::post().to(result_alias))
        .route("/4", web::post().to(with_status))
        .route("/5", web::post().to(option))
        .route("/6", web::post().to(either))
        .route("/7", web::post().to(custom));
}
