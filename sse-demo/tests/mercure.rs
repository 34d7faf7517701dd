//! The demo as a Mercure hub (`--mercure`): the discovery header, publishing and refusing,
//! and, in headless Chromium (`e2e/mercure.mjs`), the cases of Mercure's conformance suite.

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

fn start_hub(dir: &tempfile::TempDir) -> Demo {
    Demo::start_with(
        dir.path().join("demo.db"),
        0,
        &[
            "--mercure",
            "--mercure-anonymous",
            "--mercure-publisher-jwt-key",
            KEY,
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
    let lines = e2e::run(
        "mercure.mjs",
        &[demo.url.as_str(), token.as_str()],
        Duration::from_secs(120),
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("private update not delivered")),
        "{lines:?}"
    );
    demo.stop(Duration::from_secs(5));
}
