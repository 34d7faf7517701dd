//! The users API over real HTTP, watched through the event stream.

#[path = "support/app.rs"]
mod app;

use std::time::Duration;

use serde_json::{json, Value};

use app::TestApp;
use test_support::sse::{epoch, seq, SseClient};

const WAIT: Duration = Duration::from_secs(5);

/// Runs each named test body, an `async fn(TestApp)`, on both backends: as `name::sqlite`, and
/// as `name::postgres`, ignored unless PostgreSQL is there.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::TestApp;

            #[actix_rt::test]
            async fn sqlite() {
                super::$name(TestApp::start().await).await
            }

            #[actix_rt::test]
            #[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
            async fn postgres() {
                super::$name(TestApp::start_postgres().await).await
            }
        }
    )*};
}

on_both_backends!(
    changes_publish_their_events_in_order,
    rejected_requests_write_and_publish_nothing,
    reconnecting_with_last_event_id_replays_exactly_what_was_missed,
    page_and_cors,
);

fn ada() -> Value {
    json!({"username": "ada", "email": "ada@example.com"})
}

async fn changes_publish_their_events_in_order(app: TestApp) {
    let (mut stream, preamble) = SseClient::open(&app.stream_url(), None).await;
    let start = preamble.id().to_owned();
    assert_eq!(seq(&start), 0);
    assert!(
        preamble.retry.is_none(),
        "no retry configured: {preamble:?}"
    );

    let (status, created) = app.call("POST", "/api/v1/users", Some(ada())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["username"], "ada");
    assert_eq!(created["version"], 1);
    let id = created["id"].as_i64().expect("numeric id");

    let (status, updated) = app
        .call(
            "PUT",
            &format!("/api/v1/users/{id}"),
            Some(json!({"username": "ada.lovelace"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        created["email"], "ada@example.com",
        "the creator's response"
    );
    assert!(updated.get("email").is_none(), "not the owner: {updated}");
    assert_eq!(updated["version"], 2);

    let (status, fetched) = app.call("GET", &format!("/api/v1/users/{id}"), None).await;
    assert_eq!((status, &fetched), (200, &updated));
    let (status, all) = app.call("GET", "/api/v1/users", None).await;
    assert_eq!((status, all), (200, json!([updated])));

    let (status, deleted) = app
        .call("DELETE", &format!("/api/v1/users/{id}"), None)
        .await;
    assert_eq!((status, &deleted), (200, &json!({ "id": id })));
    let (status, _) = app.call("GET", &format!("/api/v1/users/{id}"), None).await;
    assert_eq!(status, 404);

    let expected = [
        ("user_created", public(created)),
        ("user_updated", updated),
        ("user_deleted", deleted),
    ];
    for (n, (name, payload)) in expected.into_iter().enumerate() {
        let event = stream.next_event(WAIT).await;
        assert_eq!(event.event.as_deref(), Some(name), "{event:?}");
        assert_eq!(event.json(), payload);
        assert_eq!(epoch(event.id()), epoch(&start));
        assert_eq!(seq(event.id()), n as u64 + 1);
    }
    stream.assert_quiet(Duration::from_millis(300)).await;
    assert_eq!(app.events.stats().published, 3);
    app.stop().await;
}

async fn rejected_requests_write_and_publish_nothing(app: TestApp) {
    let (mut stream, _) = SseClient::open(&app.stream_url(), None).await;
    let (status, ada) = app.call("POST", "/api/v1/users", Some(ada())).await;
    assert_eq!(status, 201);
    let first = stream.next_event(WAIT).await;
    assert_eq!(first.json(), public(ada.clone()));
    let ada_path = format!("/api/v1/users/{}", ada["id"]);

    let long = "x".repeat(65);
    let json_cases: Vec<(&str, String, Value, u16)> = vec![
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": "", "email": "b@example.com"}),
            422,
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": "  ", "email": "b@example.com"}),
            422,
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": long, "email": "b@example.com"}),
            422,
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": "bob", "email": "bob"}),
            422,
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": "bob", "email": "bob@local"}),
            422,
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": "bob"}),
            400,
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": 7, "email": "b@example.com"}),
            400,
        ),
        ("POST", "/api/v1/users".into(), json!(["bob"]), 400),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": "ADA", "email": "b@example.com"}),
            409,
        ),
        ("PUT", ada_path.clone(), json!({}), 422),
        (
            "PUT",
            ada_path.clone(),
            json!({"email": "not an email"}),
            422,
        ),
        ("PUT", ada_path.clone(), json!({"username": ""}), 422),
        (
            "PUT",
            "/api/v1/users/999".into(),
            json!({"username": "bob"}),
            404,
        ),
        (
            "PUT",
            "/api/v1/users/abc".into(),
            json!({"username": "bob"}),
            404,
        ),
    ];
    for (method, path, body, expected) in json_cases {
        let (status, error) = app.call(method, &path, Some(body.clone())).await;
        assert_eq!(status, expected, "{method} {path} {body}: {error}");
        assert_error_body(&error);
    }

    // Ada is taken regardless of case, also by a rename.
    let (status, bob) = app
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "bob", "email": "bob@example.com"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(stream.next_event(WAIT).await.json(), public(bob.clone()));
    let bob_path = format!("/api/v1/users/{}", bob["id"]);
    let (status, error) = app
        .call("PUT", &bob_path, Some(json!({"username": "Ada"})))
        .await;
    assert_eq!(status, 409, "{error}");
    assert_error_body(&error);

    let raw_cases = [
        (
            "POST",
            "/api/v1/users",
            "application/json",
            "{\"username\": \"carol\"",
            400,
        ),
        ("POST", "/api/v1/users", "application/json", "", 400),
        (
            "POST",
            "/api/v1/users",
            "text/plain",
            r#"{"username":"carol","email":"c@example.com"}"#,
            415,
        ),
        (
            "POST",
            "/api/v1/users",
            "application/x-www-form-urlencoded",
            "username=carol",
            415,
        ),
        (
            "PUT",
            "/api/v1/users/1",
            "text/plain",
            r#"{"username":"carol"}"#,
            415,
        ),
    ];
    for (method, path, content_type, body, expected) in raw_cases {
        let (status, error) = app.send_raw(method, path, content_type, body).await;
        assert_eq!(
            status, expected,
            "{method} {path} ({content_type}) {body:?}: {error}"
        );
        assert_error_body(&error);
    }
    let huge = format!(
        r#"{{"username":"carol","email":"{}@example.com"}}"#,
        "c".repeat(20_000)
    );
    let (status, error) = app
        .send_raw("POST", "/api/v1/users", "application/json", &huge)
        .await;
    assert_eq!(status, 413, "{error}");
    assert_error_body(&error);

    for (method, path) in [
        ("GET", "/api/v1/users/999"),
        ("DELETE", "/api/v1/users/999"),
        ("DELETE", "/api/v1/users/abc"),
    ] {
        let (status, error) = app.call(method, path, None).await;
        assert_eq!(status, 404, "{method} {path}: {error}");
        assert_error_body(&error);
    }

    // Nothing was written: the list is still Ada and Bob, unchanged.
    let (_, all) = app.call("GET", "/api/v1/users", None).await;
    assert_eq!(all, json!([public(ada.clone()), public(bob.clone())]));
    // Nothing was published: the next event is the next valid change.
    let (status, carol) = app
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "carol", "email": "c@example.com"})),
        )
        .await;
    assert_eq!(status, 201);
    let next = stream.next_event(WAIT).await;
    assert_eq!(next.event.as_deref(), Some("user_created"));
    assert_eq!(next.json(), public(carol));
    assert_eq!(seq(next.id()), 3);
    assert_eq!(app.events.stats().published, 3);
    assert_eq!(app.events.stats().emit_failures, 0);
    app.stop().await;
}

/// A user response as the public events carry it: without the email.
fn public(mut user: Value) -> Value {
    if let Some(fields) = user.as_object_mut() {
        fields.remove("email");
    }
    user
}

fn assert_error_body(body: &Value) {
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty(),
        "expected {{\"error\": ...}}, got {body}"
    );
}

async fn reconnecting_with_last_event_id_replays_exactly_what_was_missed(app: TestApp) {
    let (mut stream, _) = SseClient::open(&app.stream_url(), None).await;
    let (_, ada) = app.call("POST", "/api/v1/users", Some(ada())).await;
    let seen = stream.next_event(WAIT).await;
    assert_eq!(seen.json(), public(ada.clone()));
    drop(stream);

    // While disconnected.
    let (_, bob) = app
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "bob", "email": "b@example.com"})),
        )
        .await;
    let (_, ada2) = app
        .call(
            "PUT",
            &format!("/api/v1/users/{}", ada["id"]),
            Some(json!({"email": "ada@lovelace.org"})),
        )
        .await;
    let (_, gone) = app
        .call("DELETE", &format!("/api/v1/users/{}", bob["id"]), None)
        .await;

    let missed = [
        ("user_created", public(bob.clone())),
        ("user_updated", ada2),
        ("user_deleted", gone),
    ];
    // By header, as a browser reconnects, and by query parameter, as a page reopening a stream.
    let by_query = format!("{}?lastEventId={}", app.stream_url(), seen.id());
    for (url, header) in [(app.stream_url(), Some(seen.id())), (by_query, None)] {
        let (mut stream, preamble) = SseClient::open(&url, header).await;
        assert!(
            preamble.id.is_none(),
            "events follow, so no id in the preamble"
        );
        for (n, (name, payload)) in missed.iter().enumerate() {
            let event = stream.next_event(WAIT).await;
            assert_eq!(event.event.as_deref(), Some(*name), "{url}");
            assert_eq!(&event.json(), payload);
            assert_eq!(seq(event.id()), seq(seen.id()) + 1 + n as u64);
        }
        stream.assert_quiet(Duration::from_millis(300)).await;
    }

    // At the head: nothing to replay, and the preamble confirms the position.
    let head = app.events.last_event_id().to_string();
    let (mut stream, preamble) = SseClient::open(&app.stream_url(), Some(&head)).await;
    assert_eq!(preamble.id.as_deref(), Some(head.as_str()));
    stream.assert_quiet(Duration::from_millis(300)).await;

    // An id from another run of the server cannot be resumed: the client is told to refetch.
    let (mut stream, _) = SseClient::open(&app.stream_url(), Some("zzzz-3")).await;
    let reset = stream.next_event(WAIT).await;
    assert_eq!(reset.event.as_deref(), Some(sse_core::RESET_EVENT));
    assert!(reset.json()["reason"].is_string(), "{reset:?}");
    assert_eq!(reset.id(), head);
    assert_eq!(app.events.stats().resumed, 3);
    assert_eq!(app.events.stats().resets, 1);
    app.stop().await;
}

async fn page_and_cors(app: TestApp) {
    let mut res = app
        .client
        .get(format!("{}/", app.url))
        .send()
        .await
        .expect("GET /");
    assert_eq!(res.status(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("text/html; charset=utf-8"));
    let page = res.body().await.expect("page");
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(r#"from "/api/sse/stream/client.js""#),
        "the page subscribes through the client"
    );
    assert!(page.contains(r#"id="status""#));

    let preflight = |origin: &'static str| {
        app.client
            .request(
                actix_web::http::Method::OPTIONS,
                format!("{}/api/v1/users", app.url),
            )
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header(("access-control-request-headers", "content-type"))
            .send()
    };
    let res = preflight(app::ALLOWED_ORIGIN).await.expect("preflight");
    assert_eq!(res.status(), 200);
    let allowed = res.headers().get("access-control-allow-origin");
    assert_eq!(
        allowed.and_then(|v| v.to_str().ok()),
        Some(app::ALLOWED_ORIGIN)
    );
    let res = preflight("http://elsewhere.test").await.expect("preflight");
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // The page's own origin is always allowed, as browsers send it on same-origin writes.
    let res = app
        .client
        .post(format!("{}/api/v1/users", app.url))
        .insert_header(("origin", app.url.clone()))
        .send_json(&ada())
        .await
        .expect("POST");
    assert_eq!(res.status(), 201);
    app.stop().await;
}
