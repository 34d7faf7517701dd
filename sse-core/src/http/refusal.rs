//! Why a stream request was refused: a status, a message for the client, and the counter it
//! goes to.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::fanout::Shared;

pub(super) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// 400, counted as a bad request.
    pub(super) fn bad(shared: &Shared, req: &HttpRequest, message: String) -> Self {
        Self::counted(
            &shared.counters.bad_requests,
            req,
            StatusCode::BAD_REQUEST,
            message,
        )
    }

    /// A refusal with `status`, counted in `counter` and logged.
    pub(super) fn counted(
        counter: &AtomicU64,
        req: &HttpRequest,
        status: StatusCode,
        message: String,
    ) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            status = status.as_u16(),
            peer = ?req.peer_addr(),
            %message,
            "sse stream request refused"
        );
        Self { status, message }
    }

    /// 503 during shutdown: not a client's fault, not counted.
    pub(super) fn shutting_down() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the event stream is shutting down".to_owned(),
        }
    }

    pub(super) fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            StatusCode::UNAUTHORIZED => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.message)
    }
}
