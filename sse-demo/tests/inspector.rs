//! The live inspector of `sse-demo --inspector` in headless Chromium, driven by
//! `e2e/inspector.mjs`; and that without the flag there is no inspector.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;
#[path = "support/e2e.rs"]
#[allow(dead_code)] // the script runs to its end: no answers, no measures
mod e2e;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use binary::Demo;
use sse_demo::login::LoginKey;
use sse_demo::observe::INSPECTOR_TOPIC;

const SECRET: &str = "inspector-test-secret-of-32-bytes!";

#[test]
#[ignore = "needs chromium and node_modules in sse-demo/e2e (see .ci/run)"]
fn inspector_shows_streams_events_and_refusals_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start_with(
        dir.path().join("demo.db"),
        0,
        &["--inspector", "--jwt-secret", SECRET],
    );
    let token = LoginKey::new(SECRET)
        .token("inspector", &[INSPECTOR_TOPIC], Duration::from_secs(600))
        .expect("sign");
    // The script gives up after 60 s.
    let args = [&demo.url, &token];
    e2e::run("inspector.mjs", &args, Duration::from_secs(90));
    demo.stop(Duration::from_secs(10));
}

#[test]
#[ignore = "runs the sse-demo binary"]
fn no_inspector_without_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start(dir.path().join("demo.db"), 0);
    let mut stream = TcpStream::connect(demo.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET /debug/sse HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.0 404"), "{response}");
}
