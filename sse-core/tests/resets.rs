//! Resets as the metrics see them: each cause has its own `reason` label, and a reset that
//! answers a `Last-Event-ID` is a resume outcome. Its own test binary: it installs the
//! process-wide recorder.
#![cfg(feature = "metrics")]

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::CompositeKey;

type Sample = (
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
);
use sse_core::Broadcaster;

/// The value of the counter `name` whose labels include every pair of `labels`.
fn counter(snapshot: &[Sample], name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == name)
        .filter(|(key, ..)| {
            labels.iter().all(|(k, v)| {
                key.key()
                    .labels()
                    .any(|label| label.key() == *k && label.value() == *v)
            })
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

#[actix_rt::test]
async fn malformed_last_event_id_is_its_own_reset_reason_and_a_resume_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let events = Broadcaster::new();
    let request = actix_web::test::TestRequest::default()
        .insert_header(("last-event-id", "garbage-not-an-id"))
        .to_http_request();
    let response = events.respond(&request);
    assert_eq!(response.status(), 200);
    // The reset is built (and counted) as the stream opens, before anything is read.
    assert_eq!(events.stats().resets, 1);
    // One snapshot: taking one drains the counters.
    let counters = snapshotter.snapshot().into_vec();

    assert_eq!(
        counter(&counters, "sse_resets_total", &[("reason", "lost")]),
        0,
        "a client's malformed id must not look like events lost by an engine"
    );
    assert_eq!(
        counter(&counters, "sse_resets_total", &[("reason", "malformed_id")]),
        1
    );
    assert_eq!(
        counter(&counters, "sse_resumes_total", &[("outcome", "reset")]),
        1
    );
}
