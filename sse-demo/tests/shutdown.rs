//! The real binary: starts, serves, and stops at once on SIGTERM even with open streams.

#[path = "support/binary.rs"]
#[allow(dead_code)] // shared with the other tests of the binary
mod binary;

use std::process::Command;
use std::time::Duration;

use binary::{closes_within, open_stream, Demo};

#[test]
fn sigterm_with_open_streams_exits_within_two_seconds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    let demo = Demo::start(&db, 0);
    assert!(db.exists(), "the database file is created");
    assert!(demo.url.starts_with("http://127.0.0.1:"), "{}", demo.url);

    let mut streams = [open_stream(demo.addr), open_stream(demo.addr)];
    let took = demo.stop(Duration::from_secs(3));
    eprintln!("exited {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(2),
        "exited {took:?} after SIGTERM; open streams must not hold up shutdown"
    );
    for stream in &mut streams {
        assert!(closes_within(stream, Duration::from_secs(1)));
    }
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(binary::binary())
        .arg("--help")
        .output()
        .expect("run sse-demo --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--port",
        "[env: PORT=",
        "--bind",
        "--database-url",
        "DATABASE_URL",
        "--cors-origin",
        "CORS_ORIGINS",
        "--history",
        "--keep-alive-secs",
        "--retry-ms",
        "--jwt-secret",
        "SSE_JWT_SECRET",
        "--redis",
        "REDIS_URL",
        "--redis-stream",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}
