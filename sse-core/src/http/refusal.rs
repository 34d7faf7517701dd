//! Why a stream request was refused: a status, a message for the client, and the counter it
//! goes to.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::fanout::{Hub, Refusals, Refused};

/// Logs the refusals since the last summary, when one is due (at most once a minute).
fn summarize(refusals: Option<Refusals>) {
    let Some(r) = refusals else {
        return;
    };
    tracing::warn!(
        refused = r.since,
        bad_requests = r.bad_requests,
        unauthorized = r.unauthorized,
        forbidden = r.forbidden,
        over_limit = r.over_limit,
        "sse stream requests refused since the last summary (totals by reason follow; each \
         refusal is logged at debug)"
    );
}

pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// 400, counted as a bad request.
    pub(crate) fn bad(shared: &Hub, req: &HttpRequest, message: String) -> Self {
        Self::counted(
            shared,
            Refused::BadRequest,
            req,
            StatusCode::BAD_REQUEST,
            message,
        )
    }

    /// A refusal with `status`, counted and logged: each at debug (a flood of refusals must
    /// not flood the log), with a warning that sums them up at most once a minute.
    pub(crate) fn counted(
        shared: &Hub,
        kind: Refused,
        req: &HttpRequest,
        status: StatusCode,
        message: String,
    ) -> Self {
        let summary = shared.counters().refused(kind, status.as_u16());
        tracing::debug!(
            status = status.as_u16(),
            peer = ?req.peer_addr(),
            %message,
            "sse stream request refused"
        );
        summarize(summary);
        Self { status, message }
    }

    /// 503 during shutdown: not a client's fault, not counted.
    pub(crate) fn shutting_down() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the event stream is shutting down".to_owned(),
        }
    }

    pub(crate) fn into_response(self) -> HttpResponse {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use actix_web::test::TestRequest;
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    use super::*;
    use crate::Broadcaster;

    /// The level of every event logged.
    #[derive(Clone, Default)]
    struct Levels(Arc<Mutex<Vec<Level>>>);

    impl<S: Subscriber> Layer<S> for Levels {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            if let Ok(mut levels) = self.0.lock() {
                levels.push(*event.metadata().level());
            }
        }
    }

    #[test]
    fn a_flood_of_refusals_is_logged_at_debug_with_one_warning() {
        let events = Broadcaster::builder().keep_alive(None).build();
        let levels = Levels::default();
        let subscriber = tracing_subscriber::registry().with(levels.clone());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                let req = TestRequest::default().to_http_request();
                let refusal = Refusal::bad(&events.shared, &req, format!("bad request {i}"));
                assert_eq!(refusal.into_response().status(), StatusCode::BAD_REQUEST);
            }
        });
        let levels = levels.0.lock().expect("levels").clone();
        let count = |level| levels.iter().filter(|l| **l == level).count();
        assert_eq!(count(Level::DEBUG), 1000, "one debug line per refusal");
        assert_eq!(count(Level::WARN), 1, "one summary warning a minute");
        assert_eq!(levels.len(), 1001, "nothing else: {levels:?}");
        assert_eq!(events.stats().bad_requests, 1000);
    }
}
