//! Start-up flags of the demo binary: the no-password login only with `--demo-login`, and a
//! JWT secret long enough to mean something.

#[allow(dead_code)]
#[path = "support/binary.rs"]
mod binary;

use std::process::Command;
use std::time::Duration;

use binary::Demo;

async fn post(demo: &Demo, path: &str, body: serde_json::Value) -> u16 {
    let res = awc::Client::new()
        .post(format!("http://{}{path}", demo.addr))
        .send_json(&body)
        .await;
    res.expect("request").status().as_u16()
}

async fn login_status(demo: &Demo) -> u16 {
    post(demo, "/api/v1/login", serde_json::json!({"user_id": 1})).await
}

/// `GET /api/v1/login`: how the page finds out whether to offer "View as user…".
async fn login_probe(demo: &Demo) -> u16 {
    let res = awc::Client::new()
        .get(format!("http://{}/api/v1/login", demo.addr))
        .send()
        .await;
    res.expect("request").status().as_u16()
}

#[actix_rt::test]
async fn login_exists_only_with_demo_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start(dir.path().join("a.db"), 0);
    assert_eq!(
        login_status(&demo).await,
        404,
        "no login without --demo-login"
    );
    assert_eq!(login_probe(&demo).await, 404, "the page offers no sign-in");
    demo.stop(Duration::from_secs(5));

    let demo = Demo::start_with(dir.path().join("b.db"), 0, &["--demo-login"]);
    assert_eq!(login_probe(&demo).await, 204, "the page offers View as");
    // No user 1 yet: the endpoint exists and says so.
    assert_eq!(login_status(&demo).await, 404);
    let user = serde_json::json!({"username": "ada", "email": "a@b.co"});
    assert_eq!(post(&demo, "/api/v1/users", user).await, 201);
    assert_eq!(login_status(&demo).await, 200);
    demo.stop(Duration::from_secs(5));
}

#[test]
fn a_short_jwt_secret_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_sse-demo"))
        .args([
            "--port",
            "0",
            "--database-url",
            "sqlite::memory:",
            "--jwt-secret",
            "short",
        ])
        .output()
        .expect("run sse-demo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
}
