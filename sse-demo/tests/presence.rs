//! Presence over real HTTP: streams on `watch/users/{id}` are counted, and every page following
//! `users/*` gets the count as a `user_watchers` event; `GET /api/v1/watchers` has the counts.

#[allow(dead_code)] // shared with api.rs
#[path = "support/app.rs"]
mod app;

use std::time::Duration;

use serde_json::{json, Value};

use app::TestApp;
use test_support::sse::SseClient;

/// Longer than a count takes (50 ms after a change) and a closed stream takes to be noticed.
const WAIT: Duration = Duration::from_secs(5);
/// Long enough for a count that should not come.
const QUIET: Duration = Duration::from_millis(1500);

async fn create(app: &TestApp, name: &str) -> i64 {
    let body = json!({"username": name, "email": format!("{name}@example.com")});
    let (status, user) = app.call("POST", "/api/v1/users", Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_i64().expect("id")
}

/// The next event, which must be `user_watchers`; its data.
async fn next_count(stream: &mut SseClient) -> Value {
    let event = stream.next_event(WAIT).await;
    assert_eq!(event.event.as_deref(), Some("user_watchers"), "{event:?}");
    event.json()
}

#[actix_rt::test]
async fn watch_streams_are_counted_and_the_count_is_published_on_the_user_topic() {
    let app = TestApp::start().await;
    // The page opens first and sees both users created: a handler's event reaches the
    // streams when the log's follower has read it, a moment after the response, so a stream
    // opened right after the responses could still get them live.
    let (mut page, _) = SseClient::open(&format!("{}?topic=users/*", app.stream_url()), None).await;
    let ada = create(&app, "ada").await;
    let bob = create(&app, "bob").await;
    for _ in 0..2 {
        let event = page.next_event(WAIT).await;
        assert_eq!(event.event.as_deref(), Some("user_created"), "{event:?}");
    }
    let (mut bobs, _) =
        SseClient::open(&format!("{}?topic=users/{bob}", app.stream_url()), None).await;

    // Following every user is not watching one.
    page.assert_quiet(QUIET).await;

    let watch = format!("{}?topic=users/*&topic=watch/users/{ada}", app.stream_url());
    let (first, _) = SseClient::open(&watch, None).await;
    assert_eq!(
        next_count(&mut page).await,
        json!({"id": ada, "watchers": 1})
    );
    let (status, counts) = app.call("GET", "/api/v1/watchers", None).await;
    assert_eq!(status, 200);
    assert_eq!(counts, json!([{"id": ada, "watchers": 1}]));

    let (second, _) = SseClient::open(&watch, None).await;
    assert_eq!(
        next_count(&mut page).await,
        json!({"id": ada, "watchers": 2})
    );
    // A refused stream (a private topic without a token beside the watch topic) is not
    // counted.
    let refused = app
        .client
        .get(format!("{watch}&topic=users/{ada}/private"))
        .send()
        .await
        .expect("stream request");
    assert_eq!(refused.status(), 401);
    drop(refused);

    drop(first);
    assert_eq!(
        next_count(&mut page).await,
        json!({"id": ada, "watchers": 1})
    );
    drop(second);
    assert_eq!(
        next_count(&mut page).await,
        json!({"id": ada, "watchers": 0})
    );
    let (_, counts) = app.call("GET", "/api/v1/watchers", None).await;
    assert_eq!(counts, json!([]));
    page.assert_quiet(QUIET).await;
    // Only ada's topic carried her counts.
    bobs.assert_quiet(Duration::from_millis(100)).await;
    app.stop().await;
}
