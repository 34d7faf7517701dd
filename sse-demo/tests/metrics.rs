//! `/metrics` of the real binary, on its operations address only: the exposition passes
//! Prometheus's own parser (`promtool check metrics`), and the gauge and counters move as
//! streams open and close and events are published.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use binary::{open_stream, Demo};

/// `GET path` over HTTP/1.0 (no chunking): status line and body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    // Until the server closes, or 10 s (a stream answered by mistake never closes).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bytes = Vec::new();
    let mut buf = [0; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf).expect("read response") {
            0 => break,
            n => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let response = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The exposition, after checking it with `promtool check metrics`.
fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian's `prometheus` package)");
    promtool
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    body
}

/// The value of the sample `series` (name and labels, as exposed), 0 if absent.
fn value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Scrapes until `check` holds (at most 5 s); the last exposition.
fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(addr);
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}: not within 5 s\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post_user(addr: SocketAddr, name: &str) {
    let body = format!(r#"{{"username":"{name}","email":"{name}@example.com"}}"#);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(
        stream,
        "POST /api/v1/users HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.0 201"), "{response}");
}

#[test]
#[ignore = "needs promtool (Debian's `prometheus` package; see .ci/run)"]
fn metrics_parse_and_move_with_streams_and_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start_with(
        dir.path().join("demo.db"),
        0,
        &["--keep-alive-secs", "1", "--ops-bind", "127.0.0.1:0"],
    );
    let (addr, ops) = (demo.addr, demo.ops.expect("the operations address"));

    let before = scrape(ops);
    assert_eq!(value(&before, "sse_streams_open"), 0.0, "{before}");

    let stream = open_stream(addr);
    let text = scrape_until(ops, "the open-streams gauge", |t| {
        value(t, "sse_streams_open") == 1.0
    });
    assert_eq!(value(&text, "sse_streams_total"), 1.0, "{text}");

    post_user(addr, "ann");
    post_user(addr, "bob");
    let published = r#"sse_events_published_total{event="user_created"}"#;
    let text = scrape_until(ops, "events published", |t| value(t, published) == 2.0);
    assert_eq!(value(&text, "sse_streams_open"), 1.0);
    // Stream counters are reported at the next keep-alive (1 s here).
    let text = scrape_until(ops, "deliveries and keep-alives", |t| {
        value(t, "sse_deliveries_total") >= 1.0 && value(t, "sse_keep_alives_total") >= 1.0
    });
    assert!(value(&text, "sse_written_bytes_total") > 0.0, "{text}");
    assert!(
        value(&text, "sse_publish_to_write_seconds_count") >= 1.0,
        "{text}"
    );

    let (status, _) = get(addr, "/api/sse/stream?topic=*/b");
    assert!(status.contains(" 400 "), "{status}");
    let (status, _) = get(addr, "/api/sse/stream?topic=users/1/private");
    assert!(status.contains(" 401 "), "{status}");
    let text = scrape(ops);
    assert_eq!(value(&text, r#"sse_refusals_total{status="400"}"#), 1.0);
    assert_eq!(value(&text, r#"sse_refusals_total{status="401"}"#), 1.0);

    drop(stream);
    let text = scrape_until(ops, "the stream's end", |t| {
        value(t, "sse_streams_open") == 0.0
    });
    assert_eq!(
        value(
            &text,
            r#"sse_stream_duration_seconds_count{ended="client_gone"}"#
        ),
        1.0,
        "{text}"
    );
    demo.stop(Duration::from_secs(10));
}

#[test]
fn metrics_are_not_served_on_the_public_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start(dir.path().join("a.db"), 0);
    // Counts of private events included: for the operator, not for whoever reaches the site.
    let (status, body) = get(demo.addr, "/metrics");
    assert!(status.contains(" 404 "), "{status}\n{body}");
    demo.stop(Duration::from_secs(10));

    let args = ["--ops-bind", "127.0.0.1:0"];
    let demo = Demo::start_with(dir.path().join("b.db"), 0, &args);
    let (status, _) = get(demo.addr, "/metrics");
    assert!(status.contains(" 404 "), "{status}");
    let (status, _) = get(demo.ops.expect("the operations address"), "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    demo.stop(Duration::from_secs(10));
}
