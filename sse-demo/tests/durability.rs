//! What a committed change's event survives: the process that committed it dying, and a
//! restart. The demo's handlers write their events in their own transaction into the event
//! log table of its database, so an event exists if and only if its change committed.

#[path = "support/binary.rs"]
#[allow(dead_code)] // shared with the other tests of the binary
mod binary;
#[path = "support/proxy.rs"]
mod proxy;

use std::time::Duration;

use binary::{request, Demo};
use proxy::Proxy;
use test_support::servers::Redis;
use test_support::sse::SseClient;

const WAIT: Duration = Duration::from_secs(10);

fn create(demo: &Demo, username: &str) {
    let body = format!(r#"{{"username":"{username}","email":"{username}@example.com"}}"#);
    let response = request(demo.addr, "POST", "/api/v1/users", &body);
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "creating {username}: {response}"
    );
}

fn stream_url(demo: &Demo) -> String {
    format!(
        "{}{}",
        demo.url.trim_end_matches('/'),
        sse_demo::STREAM_PATH
    )
}

#[actix_rt::test]
async fn a_client_resumes_across_a_restart_with_the_events_it_missed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    let demo = Demo::start(&db, 0);
    let (mut stream, _) = SseClient::open(&stream_url(&demo), None).await;
    create(&demo, "ada");
    let first = stream.next_event(WAIT).await;
    assert_eq!(first.event.as_deref(), Some("user_created"));
    drop(stream);
    create(&demo, "bob");
    create(&demo, "carol");
    demo.kill();

    let demo = Demo::start(&db, 0);
    let (mut stream, _) = SseClient::open(&stream_url(&demo), Some(first.id())).await;
    let mut names = Vec::new();
    for _ in 0..2 {
        let event = stream.next_event(WAIT).await;
        assert_eq!(
            event.event.as_deref(),
            Some("user_created"),
            "the missed changes, not a reset: {event:?}"
        );
        names.push(event.json()["username"].as_str().map(str::to_owned));
    }
    assert_eq!(names, [Some("bob".to_owned()), Some("carol".to_owned())]);
    demo.stop(Duration::from_secs(5));
}

#[actix_rt::test]
async fn a_change_committed_just_before_a_crash_reaches_the_other_instance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    let a = Demo::start(&db, 0);
    let b = Demo::start(&db, 0);
    let (mut stream, _) = SseClient::open(&stream_url(&b), None).await;
    let users = ["u1", "u2", "u3", "u4", "u5"];
    for user in users {
        create(&a, user);
    }
    // Every change was answered 201, so committed; the instance that committed them dies at
    // once, before it could do anything more.
    a.kill();
    let mut seen = Vec::new();
    for _ in users {
        let event = stream.next_event(WAIT).await;
        assert_eq!(event.event.as_deref(), Some("user_created"), "{event:?}");
        seen.push(
            event.json()["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(seen, users);
    b.stop(Duration::from_secs(5));
}

/// Two instances on one SQLite file and one Redis stream; the one that relays the log to
/// Redis is cut off from it, commits five changes, and dies. Nothing was in Redis; everything
/// was in the table, which the other instance (or the restarted one) relays.
#[actix_rt::test]
#[ignore = "needs redis-server (a private one is started)"]
async fn changes_committed_while_cut_off_from_redis_survive_a_crash() {
    let redis = Redis::start().await;
    let link = Proxy::start(([127, 0, 0, 1], redis.port).into());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    let through_link = format!("redis://{}", link.addr);
    // Started first, so it holds the relay's lease.
    let a = Demo::start_with(&db, 0, &["--redis", &through_link]);
    let b = Demo::start_with(&db, 0, &["--redis", &redis.url()]);
    let (mut stream, _) = SseClient::open(&stream_url(&b), None).await;
    create(&a, "before");
    let first = stream.next_event(WAIT).await;
    assert_eq!(first.json()["username"], "before");

    link.cut(true);
    let users = ["u1", "u2", "u3", "u4", "u5"];
    for user in users {
        create(&a, user);
    }
    a.kill();
    link.resume();
    let a = Demo::start_with(&db, 0, &["--redis", &through_link]);
    let mut seen = Vec::new();
    for _ in users {
        let event = stream.next_event(Duration::from_secs(20)).await;
        assert_eq!(event.event.as_deref(), Some("user_created"), "{event:?}");
        seen.push(
            event.json()["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(seen, users, "each committed change once, in commit order");
    a.stop(Duration::from_secs(5));
    b.stop(Duration::from_secs(5));
}
