//! The demo as a Mercure hub (`--mercure`): the discovery header, publishing and refusing,
//! the subscriptions API and the hub's own CORS beside the application's, and, in headless
//! Chromium (`e2e/mercure.mjs`), the cases of Mercure's conformance suite and CORS.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;
#[path = "support/e2e.rs"]
#[allow(dead_code)]
mod e2e;

use std::time::Duration;

use binary::Demo;
use jsonwebtoken::{encode, EncodingKey, Header};

const KEY: &str = "a publisher key for the demo's Mercure tests";

fn publisher_token() -> String {
    let claims = serde_json::json!({ "mercure": { "publish": ["*"] } });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(KEY.as_bytes()),
    )
    .expect("sign")
}

fn token_for(claim: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &serde_json::json!({ "mercure": claim }),
        &EncodingKey::from_secret(KEY.as_bytes()),
    )
    .expect("sign")
}

fn start_hub(dir: &tempfile::TempDir) -> Demo {
    Demo::start_with(
        dir.path().join("demo.db"),
        0,
        &[
            "--mercure",
            "--mercure-anonymous",
            "--mercure-publisher-jwt-key",
            KEY,
            "--mercure-subscriptions",
            "--mercure-cors-origin",
            "*",
        ],
    )
}

#[actix_rt::test]
async fn the_demo_serves_a_mercure_hub_and_links_to_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = start_hub(&dir);
    let client = awc::Client::new();
    let page = client.get(&demo.url).send().await.expect("page");
    let link = page.headers().get("link").and_then(|v| v.to_str().ok());
    assert_eq!(link, Some("</.well-known/mercure>; rel=\"mercure\""));

    let hub = format!("http://{}/.well-known/mercure", demo.addr);
    let form = [("topic", "https://example.com/books/1"), ("id", "demo-1")];
    let mut res = client
        .post(&hub)
        .bearer_auth(publisher_token())
        .send_form(&form)
        .await
        .expect("publish");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(&res.body().await.expect("body")[..], b"demo-1");
    let res = client.post(&hub).send_form(&form).await.expect("publish");
    assert_eq!(res.status().as_u16(), 401, "no token");
    demo.stop(Duration::from_secs(5));
}

/// How many `Access-Control-Allow-Origin` headers a response has, and the first.
fn allow_origin(headers: &awc::http::header::HeaderMap) -> (usize, Option<String>) {
    let all: Vec<String> = (headers.get_all("access-control-allow-origin"))
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    (all.len(), all.first().cloned())
}

#[actix_rt::test]
async fn the_hub_flags_serve_subscriptions_and_one_set_of_cors_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `both` is allowed by the application's CORS and the hub's: the hub's routes must still
    // get one `Access-Control-Allow-Origin`; `app_only` only the application's routes.
    let (both, hub_only, app_only) = (
        "https://both.example",
        "https://hub.example",
        "https://app.example",
    );
    let hub_origins = format!("{both},{hub_only}");
    let app_origins = format!("{both},{app_only}");
    let demo = Demo::start_with(
        dir.path().join("demo.db"),
        0,
        &[
            "--mercure",
            "--mercure-anonymous",
            "--mercure-publisher-jwt-key",
            KEY,
            "--mercure-subscriptions",
            "--mercure-cors-origin",
            &hub_origins,
            "--cors-origin",
            &app_origins,
        ],
    );
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let hub = format!("http://{}/.well-known/mercure", demo.addr);
    let reader = token_for(serde_json::json!({ "subscribe": ["*"] }));

    for origin in [both, hub_only] {
        // The stream: its head is enough.
        let stream = client
            .get(format!("{hub}?topic=a"))
            .insert_header(("origin", origin))
            .send()
            .await
            .expect("subscribe");
        assert_eq!(stream.status().as_u16(), 200);
        assert_eq!(
            allow_origin(stream.headers()),
            (1, Some(origin.to_owned())),
            "{origin}"
        );
        drop(stream);
        let preflight = client
            .request(awc::http::Method::OPTIONS, &hub)
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .send()
            .await
            .expect("preflight");
        assert!(preflight.status().is_success(), "{origin}");
        assert_eq!(
            allow_origin(preflight.headers()),
            (1, Some(origin.to_owned()))
        );
        let published = client
            .post(&hub)
            .bearer_auth(publisher_token())
            .insert_header(("origin", origin))
            .send_form(&[("topic", "a")])
            .await
            .expect("publish");
        assert_eq!(published.status().as_u16(), 200);
        assert_eq!(
            allow_origin(published.headers()),
            (1, Some(origin.to_owned()))
        );
        let mut list = client
            .get(format!("{hub}/subscriptions"))
            .bearer_auth(&reader)
            .insert_header(("origin", origin))
            .send()
            .await
            .expect("subscriptions");
        assert_eq!(list.status().as_u16(), 200);
        assert_eq!(allow_origin(list.headers()), (1, Some(origin.to_owned())));
        let body: serde_json::Value =
            serde_json::from_slice(&list.body().await.expect("body")).expect("JSON");
        assert_eq!(body["type"], "Subscriptions", "{body}");
    }
    // An origin of the application only: none on the hub, one on the application's routes.
    let stream = client
        .get(format!("{hub}?topic=a"))
        .insert_header(("origin", app_only))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(allow_origin(stream.headers()), (0, None));
    drop(stream);
    for origin in [both, app_only] {
        let users = client
            .get(format!("{}api/v1/users", demo.url))
            .insert_header(("origin", origin))
            .send()
            .await
            .expect("users");
        assert_eq!(users.status().as_u16(), 200);
        assert_eq!(allow_origin(users.headers()), (1, Some(origin.to_owned())));
        let preflight = client
            .request(
                awc::http::Method::OPTIONS,
                format!("{}api/v1/users", demo.url),
            )
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .send()
            .await
            .expect("preflight");
        assert!(preflight.status().is_success(), "{origin}");
        assert_eq!(
            allow_origin(preflight.headers()),
            (1, Some(origin.to_owned()))
        );
    }
    let users = client
        .get(format!("{}api/v1/users", demo.url))
        .insert_header(("origin", hub_only))
        .send()
        .await
        .expect("users");
    assert_eq!(allow_origin(users.headers()), (0, None));
    // Still one Link header of discovery on the application's routes.
    let link = users.headers().get_all("link").count();
    assert_eq!(link, 1);
    demo.stop(Duration::from_secs(5));
}

#[test]
fn mercure_without_a_publisher_key_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-demo"))
        .args([
            "--port",
            "0",
            "--database-url",
            "sqlite::memory:",
            "--mercure",
        ])
        .env_remove("MERCURE_PUBLISHER_JWT_KEY")
        .output()
        .expect("run sse-demo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MERCURE_PUBLISHER_JWT_KEY"), "{stderr}");
}

#[test]
#[ignore = "needs chromium and node_modules in sse-demo/e2e (see .ci/run)"]
fn the_mercure_conformance_cases_pass_in_chromium() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = start_hub(&dir);
    let token = publisher_token();
    let reader = token_for(serde_json::json!({ "subscribe": ["*"] }));
    let lines = e2e::run(
        "mercure.mjs",
        &[demo.url.as_str(), token.as_str(), reader.as_str()],
        Duration::from_secs(120),
    );
    for says in ["private update not delivered", "cross-origin EventSource"] {
        assert!(lines.iter().any(|l| l.contains(says)), "{says}: {lines:?}");
    }
    demo.stop(Duration::from_secs(5));
}
