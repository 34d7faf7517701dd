use actix_web::web::{self, Json};
use sse_core::emit_event;
use sse_core::sql::{Tx, TxError};

#[derive(serde::Serialize)]
struct Note {
    id: i64,
}

#[emit_event("note_created", topic = "notes/{id}", transactional)]
async fn create(tx: Tx) -> Result<Json<Note>, TxError> {
    let _conn = tx.conn().await?;
    Ok(Json(Note { id: 1 }))
}

/// An application error that can say the commit failed; several events, one transaction.
#[derive(Debug)]
enum AppError {
    Unsaved(TxError),
}

impl From<TxError> for AppError {
    fn from(err: TxError) -> Self {
        AppError::Unsaved(err)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Unsaved(err) => write!(f, "{err}"),
        }
    }
}

impl actix_web::ResponseError for AppError {}

#[emit_event("note_moved", topic = "notes/{id}", transactional)]
#[emit_event("folder_changed")]
async fn move_note(mut tx: sse_core::sql::Tx, id: web::Path<i64>) -> Result<Json<Note>, AppError> {
    let _ = &mut tx;
    Ok(Json(Note { id: id.into_inner() }))
}

fn main() {
    let _ = actix_web::App::new()
        .route("/notes", web::post().to(create))
        .route("/notes/{id}", web::put().to(move_note));
}
