//! Two instances of the real binary sharing one event stream (through Redis, or NATS
//! JetStream) and one database on PostgreSQL, as the README's walk-through runs them.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;
#[path = "support/postgres.rs"]
mod postgres;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use binary::{open_stream, request, Demo};
use postgres::TestDatabase;

/// Reads `stream` until `needle` appears; fails after 10 s.
fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        assert!(Instant::now() < deadline, "{needle:?} not seen in {seen:?}");
        match stream.read(&mut buf) {
            Ok(0) => panic!("stream closed; got {:?}", String::from_utf8_lossy(&seen)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
            Err(err) => panic!("read: {err}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
#[ignore = "needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (started by .ci/run)"]
fn through_redis_a_change_on_one_instance_reaches_the_pages_of_another() {
    let stream_key = format!("sse-demo-test:{}", std::process::id());
    let args = [
        "--redis",
        "redis://127.0.0.1:6379",
        "--redis-stream",
        &stream_key,
    ];
    a_change_on_one_instance_reaches_the_pages_of_another(&args);
    if let Ok(mut redis) = TcpStream::connect("127.0.0.1:6379") {
        let _ = write!(redis, "DEL {stream_key} {stream_key}:epoch\r\n");
    }
}

#[test]
#[ignore = "needs NATS with JetStream on 127.0.0.1:4222 and PostgreSQL on 127.0.0.1:5432 (started by .ci/run)"]
fn through_nats_a_change_on_one_instance_reaches_the_pages_of_another() {
    let stream = format!("sse-demo-test-{}", std::process::id());
    let args = ["--nats", "nats://127.0.0.1:4222", "--nats-stream", &stream];
    a_change_on_one_instance_reaches_the_pages_of_another(&args);
}

/// Two instances started with `args` on one fresh database: a user created on A reaches a
/// page on B, with an engine id, and a deletion on B reaches a page on A.
fn a_change_on_one_instance_reaches_the_pages_of_another(args: &[&str]) {
    let database = TestDatabase::create();
    let db = database.url.as_str();
    let a = Demo::start_with(db, 0, args);
    let b = Demo::start_with(db, 0, args);
    let mut on_b = open_stream(b.addr);
    // The instances connect to the engine in the background; retry the write until B sees one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    let seen = loop {
        n += 1;
        let created = request(
            a.addr,
            "POST",
            "/api/v1/users",
            &format!(r#"{{"username":"ada{n}","email":"ada{n}@example.com"}}"#),
        );
        assert!(created.starts_with("HTTP/1.1 201"), "{created}");
        on_b.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        let mut buf = [0; 4096];
        match on_b.read(&mut buf) {
            Ok(k) if String::from_utf8_lossy(&buf[..k]).contains("user_created") => {
                break String::from_utf8_lossy(&buf[..k]).into_owned()
            }
            _ => assert!(Instant::now() < deadline, "B never saw A's event"),
        }
    };
    assert!(seen.contains("event: user_created"), "{seen}");
    // Ids are the engine's entry ids with the stream's epoch: `<epoch>-<a>-<b>`.
    let id = seen
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id");
    assert_eq!(id.matches('-').count(), 2, "{id}");
    // And the other way round, now that both are connected.
    let mut on_a = open_stream(a.addr);
    request(b.addr, "DELETE", "/api/v1/users/1", "");
    read_until(&mut on_a, "user_deleted");
}
