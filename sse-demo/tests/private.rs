//! The private `user_email_changed` event and the demo-only login, over real HTTP.

#[allow(dead_code)] // shared with api.rs
#[path = "support/app.rs"]
mod app;

use std::time::Duration;

use serde_json::json;

use app::TestApp;
use test_support::sse::SseClient;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

async fn create(app: &TestApp, name: &str) -> i64 {
    let body = json!({"username": name, "email": format!("{name}@example.com")});
    let (status, user) = app.call("POST", "/api/v1/users", Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_i64().expect("id")
}

async fn login(app: &TestApp, user_id: i64) -> String {
    let (status, body) = app
        .call("POST", "/api/v1/login", Some(json!({ "user_id": user_id })))
        .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

#[actix_rt::test]
async fn an_email_change_reaches_only_its_owner() {
    let app = TestApp::start().await;
    let ada = create(&app, "ada").await;
    let bob = create(&app, "bob").await;
    let url = format!("{}?topic=users/*", app.stream_url());
    let (mut owner, _) = SseClient::open_as(&url, None, Some(&login(&app, ada).await)).await;
    let (mut other, _) = SseClient::open_as(&url, None, Some(&login(&app, bob).await)).await;
    let (mut anonymous, _) = SseClient::open(&url, None).await;

    let (status, changed) = app
        .call(
            "PUT",
            &format!("/api/v1/users/{ada}/email"),
            Some(json!({"email": "ada@lovelace.org"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed, json!({"id": ada, "email": "ada@lovelace.org"}));
    let event = owner.next_event(WAIT).await;
    assert_eq!(event.event.as_deref(), Some("user_email_changed"));
    assert_eq!(event.json(), changed);
    other.assert_quiet(QUIET).await;
    anonymous.assert_quiet(QUIET).await;

    // Public changes still reach every page following users/*.
    let (status, _) = app
        .call(
            "PUT",
            &format!("/api/v1/users/{bob}"),
            Some(json!({"username": "robert"})),
        )
        .await;
    assert_eq!(status, 200);
    for stream in [&mut owner, &mut other, &mut anonymous] {
        assert_eq!(
            stream.next_event(WAIT).await.event.as_deref(),
            Some("user_updated")
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn login_and_private_stream_refusals() {
    let app = TestApp::start().await;
    let ada = create(&app, "ada").await;
    let (status, body) = app
        .call("POST", "/api/v1/login", Some(json!({"user_id": 999})))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app
        .call(
            "PUT",
            &format!("/api/v1/users/{ada}/email"),
            Some(json!({"email": "nope"})),
        )
        .await;
    assert_eq!(status, 422);

    let token = login(&app, ada).await;
    let client = awc::Client::new();
    let stream = |path: String, token: Option<&str>| {
        let mut req = client.get(format!("{}?topic={path}", app.stream_url()));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.expect("stream request").status().as_u16() }
    };
    assert_eq!(stream(format!("users/{ada}/private"), None).await, 401);
    assert_eq!(stream("users/999/private".into(), Some(&token)).await, 403);
    assert_eq!(stream("users/1/private".into(), Some("garbage")).await, 401);
    assert_eq!(
        stream(format!("users/{ada}/private"), Some(&token)).await,
        200
    );
    app.stop().await;
}

/// Issue 11/13: public events and the users list carry public fields only; an anonymous page
/// never learns an email address, whatever changes.
#[actix_rt::test]
async fn an_anonymous_subscriber_never_receives_an_email_address() {
    let app = TestApp::start().await;
    let url = format!("{}?topic=users/*", app.stream_url());
    let (mut anonymous, _) = SseClient::open(&url, None).await;
    let (mut everything, _) = SseClient::open(&app.stream_url(), None).await;

    let ada = create(&app, "ada").await;
    let changes = [
        (
            "PUT",
            format!("/api/v1/users/{ada}"),
            Some(json!({"username": "ada.l"})),
        ),
        (
            "PUT",
            format!("/api/v1/users/{ada}"),
            Some(json!({"email": "ada@l.org"})),
        ),
        (
            "PUT",
            format!("/api/v1/users/{ada}/email"),
            Some(json!({"email": "ada@lovelace.org"})),
        ),
        ("DELETE", format!("/api/v1/users/{ada}"), None),
    ];
    for (method, path, body) in changes {
        let (status, body) = app.call(method, &path, body).await;
        assert_eq!(status, 200, "{method} {path}: {body}");
    }
    // user_created, two user_updated, user_deleted: the email change is private.
    for stream in [&mut anonymous, &mut everything] {
        for expected in [
            "user_created",
            "user_updated",
            "user_updated",
            "user_deleted",
        ] {
            let event = stream.next_event(WAIT).await;
            assert_eq!(event.event.as_deref(), Some(expected));
            let data = event.json().to_string();
            assert!(
                !data.contains('@') && !data.contains("email"),
                "{expected}: {data}"
            );
        }
        stream.assert_quiet(QUIET).await;
    }
    let ada = create(&app, "ada2").await;
    let (status, all) = app.call("GET", "/api/v1/users", None).await;
    assert_eq!(status, 200);
    assert!(!all.to_string().contains('@'), "{all}");
    let (_, one) = app.call("GET", &format!("/api/v1/users/{ada}"), None).await;
    assert!(one.get("email").is_none(), "anonymous GET: {one}");
    let token = login(&app, ada).await;
    let res = app
        .client
        .get(format!("{}/api/v1/users/{ada}", app.url))
        .bearer_auth(&token)
        .send()
        .await;
    let mut res = res.expect("owner GET");
    let own: serde_json::Value = res.json().await.expect("json");
    assert_eq!(
        own["email"], "ada2@example.com",
        "the owner sees its email: {own}"
    );
    app.stop().await;
}
