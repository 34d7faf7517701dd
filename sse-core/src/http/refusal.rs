//! Why a stream request was refused: a status, a message for the client, and the counter it
//! goes to.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::fanout::Shared;

/// Which counter a refusal goes to.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    BadRequest,
    Unauthorized,
    Forbidden,
    OverLimit,
}

/// At most one summary a minute.
const SUMMARY_EVERY_MS: u64 = 60_000;

/// Logs, at most once a minute, how many stream requests were refused since the last time.
fn summarize(shared: &Shared) {
    let c = &shared.counters;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let last = c.refusals_summarized_at.load(Ordering::Relaxed);
    if now.saturating_sub(last) < SUMMARY_EVERY_MS
        // Another request is writing this summary.
        || c.refusals_summarized_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let (bad, unauthorized, forbidden, over_limit) = (
        c.bad_requests.load(Ordering::Relaxed),
        c.unauthorized.load(Ordering::Relaxed),
        c.forbidden.load(Ordering::Relaxed),
        c.over_limit.load(Ordering::Relaxed),
    );
    let total = bad + unauthorized + forbidden + over_limit;
    let before = c.refusals_summarized.swap(total, Ordering::Relaxed);
    tracing::warn!(
        refused = total - before.min(total),
        bad_requests = bad,
        unauthorized,
        forbidden,
        over_limit,
        "sse stream requests refused since the last summary (totals by reason follow; each \
         refusal is logged at debug)"
    );
}

pub(super) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// 400, counted as a bad request.
    pub(super) fn bad(shared: &Shared, req: &HttpRequest, message: String) -> Self {
        Self::counted(
            shared,
            Kind::BadRequest,
            req,
            StatusCode::BAD_REQUEST,
            message,
        )
    }

    /// A refusal with `status`, counted and logged: each at debug (a flood of refusals must
    /// not flood the log), with a warning that sums them up at most once a minute.
    pub(super) fn counted(
        shared: &Shared,
        kind: Kind,
        req: &HttpRequest,
        status: StatusCode,
        message: String,
    ) -> Self {
        let c = &shared.counters;
        let counter = match kind {
            Kind::BadRequest => &c.bad_requests,
            Kind::Unauthorized => &c.unauthorized,
            Kind::Forbidden => &c.forbidden,
            Kind::OverLimit => &c.over_limit,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::observe::refused(status.as_u16());
        tracing::debug!(
            status = status.as_u16(),
            peer = ?req.peer_addr(),
            %message,
            "sse stream request refused"
        );
        summarize(shared);
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
