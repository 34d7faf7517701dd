//! The live inspector of `sse-demo --ops-bind ... --inspector` in headless Chromium, driven
//! by `e2e/inspector.mjs`; and that it is only ever on the operations address.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;
#[path = "support/e2e.rs"]
#[allow(dead_code)] // the script runs to its end: no answers, no measures
mod e2e;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use binary::Demo;

#[test]
#[ignore = "needs chromium and node_modules in sse-demo/e2e (see .ci/run)"]
fn inspector_shows_streams_events_and_refusals_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start_with(
        dir.path().join("demo.db"),
        0,
        &["--ops-bind", "127.0.0.1:0", "--inspector"],
    );
    let ops = format!("http://{}/", demo.ops.expect("the operations address"));
    // The script gives up after 60 s.
    let args = [&demo.url, &ops];
    e2e::run("inspector.mjs", &args, Duration::from_secs(90));
    demo.stop(Duration::from_secs(10));
}

/// The status line of `GET path`.
fn status(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
#[ignore = "runs the sse-demo binary"]
fn the_inspector_is_served_only_on_the_operations_address_and_only_with_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start_with(
        dir.path().join("a.db"),
        0,
        &["--ops-bind", "127.0.0.1:0", "--inspector"],
    );
    let ops = demo.ops.expect("the operations address");
    assert!(status(ops, "/debug/sse").contains(" 200 "));
    assert!(status(demo.addr, "/debug/sse").contains(" 404 "));
    demo.stop(Duration::from_secs(10));

    let demo = Demo::start_with(dir.path().join("b.db"), 0, &["--ops-bind", "127.0.0.1:0"]);
    let ops = demo.ops.expect("the operations address");
    assert!(status(ops, "/debug/sse").contains(" 404 "));
    assert!(status(demo.addr, "/debug/sse").contains(" 404 "));
    demo.stop(Duration::from_secs(10));
}
