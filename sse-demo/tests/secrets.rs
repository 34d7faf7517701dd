//! Secrets never show: not the Redis URL's password in `--help` or the logs, not the
//! inspector's token in the logs.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use binary::forward_lines;

const URL: &str = "redis://sse:hunter2-secret@127.0.0.1:1";

#[test]
fn help_does_not_show_the_redis_password_from_the_env() {
    let out = Command::new(env!("CARGO_BIN_EXE_sse-demo"))
        .arg("--help")
        .env("REDIS_URL", URL)
        .output()
        .expect("run sse-demo --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("REDIS_URL"), "{help}");
    assert!(
        !help.contains("hunter2"),
        "--help shows the password:\n{help}"
    );
}

#[test]
fn the_startup_log_does_not_show_the_redis_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sse-demo"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--redis", URL])
        .arg("--database-url")
        .arg(dir.path().join("demo.db"))
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sse-demo");
    let lines = forward_lines(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut log = Vec::new();
    // Bounded by the deadline: read until the `started` line (Redis at port 1 is unreachable,
    // so the backend's retry warnings come too).
    while Instant::now() < deadline && !log.iter().any(|l: &String| l.contains("started")) {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    // A moment more for the backend's first connection failure to be logged.
    drain_for(&lines, &mut log, Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    let log = log.join("\n");
    assert!(log.contains("started"), "no `started` line:\n{log}");
    assert!(
        log.contains("127.0.0.1:1"),
        "the URL is shown, redacted:\n{log}"
    );
    assert!(
        !log.contains("hunter2"),
        "the log shows the password:\n{log}"
    );
}

#[test]
fn the_inspector_token_is_never_logged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sse-demo"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(["--ops-bind", "127.0.0.1:0", "--inspector"])
        .arg("--database-url")
        .arg(dir.path().join("demo.db"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sse-demo");
    let lines = forward_lines(child.stderr.take().expect("piped stderr"));
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !log.iter().any(|l: &String| l.contains("started")) {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    // The page, loaded where the log says; it carries the token for its stream.
    let told = (log.iter())
        .find_map(|l| l.split("inspector: open http://").nth(1))
        .expect("where the inspector is");
    let (addr, path) = told.split_once('/').expect("an address and a path");
    let page = get(addr, &format!("/{path}"));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let token = (page.split("name=\"sse-inspector-token\" content=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the token in the page");
    assert!(token.starts_with("eyJ"), "{token}");
    // The page's access log line, and what else comes.
    drain_for(&lines, &mut log, Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    let log = log.join("\n");
    assert!(log.contains("GET /debug/sse"), "no access log line:\n{log}");
    // Every JWT starts with the base64 of `{"`.
    assert!(
        !log.contains(token) && !log.contains("eyJ"),
        "the log shows the inspector's token:\n{log}"
    );
}

/// Adds to `log` what the demo prints during `wait` more.
fn drain_for(lines: &std::sync::mpsc::Receiver<String>, log: &mut Vec<String>, wait: Duration) {
    let until = Instant::now() + wait;
    while let Ok(line) = lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
        log.push(line);
    }
}

/// `GET path` with `Connection: close`: the whole response.
fn get(addr: &str, path: &str) -> String {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("read");
    response
}
