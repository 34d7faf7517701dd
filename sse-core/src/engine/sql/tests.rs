//! The SQL event log on SQLite files: retention, rows that do not decode, a restart.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;

use super::EventLog;
use crate::{Broadcaster, EventStream};

/// A fresh SQLite file with the log's schema.
async fn database(name: &str) -> (sqlx::SqlitePool, PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "sse-core-{name}-{}-{}.db",
        std::process::id(),
        crate::wire::new_epoch()
    ));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("a SQLite file");
    EventLog::ensure_schema(&pool).await.expect("schema");
    (pool, path)
}

/// The (id, event) pairs of the frames that arrive within `wait` once `count` have arrived.
async fn frames(stream: &mut EventStream, count: usize) -> Vec<(String, String)> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<(String, String)> = text
            .split("\n\n")
            .filter_map(|frame| {
                let id = frame.lines().find_map(|l| l.strip_prefix("id: "))?;
                let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
                Some((id.to_owned(), name.to_owned()))
            })
            .collect();
        if found.len() >= count {
            return found;
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no more frames after {found:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_resume_from_a_new_instance_on_the_file_gets_what_it_missed() {
    let (pool, path) = database("restart").await;
    let log = EventLog::open(&pool).await.expect("log");
    let first = Broadcaster::builder()
        .event_log(&log)
        .keep_alive(None)
        .build();
    let mut stream = first.subscribe(None).expect("stream");
    for n in 0..3 {
        first.publish("e", &n).expect("publish");
    }
    let seen = frames(&mut stream, 3).await;
    first.shutdown();
    drop(first);
    // Another instance, as after a restart: the same epoch, the history in the table.
    let log = EventLog::open(&pool).await.expect("log again");
    let second = Broadcaster::builder()
        .event_log(&log)
        .keep_alive(None)
        .build();
    let after = seen[0].0.parse().expect("an id");
    let mut resumed = second.subscribe(Some(after)).expect("stream");
    let replayed = frames(&mut resumed, 2).await;
    assert_eq!(replayed, seen[1..3], "the two it missed, with the same ids");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_resume_past_the_retention_gets_a_reset() {
    let (pool, path) = database("retention").await;
    let log = EventLog::open(&pool).await.expect("log");
    let events = Broadcaster::builder()
        .event_log(&log)
        .history(2)
        .keep_alive(None)
        .build();
    let mut stream = events.subscribe(None).expect("stream");
    for n in 0..5 {
        events.publish("e", &n).expect("publish");
    }
    let seen = frames(&mut stream, 5).await;
    // What the follower applies every few seconds, now: two rows kept.
    let removed = log
        .pool()
        .trim(2, usize::MAX, None, u64::MAX)
        .await
        .expect("trim");
    assert_eq!(removed, 3);
    // Not in this instance's history (a new one), so read from the table: gone.
    let other = Broadcaster::builder()
        .event_log(&EventLog::open(&pool).await.expect("log"))
        .keep_alive(None)
        .build();
    let mut resumed = other
        .subscribe(Some(seen[0].0.parse().expect("an id")))
        .expect("stream");
    let frames = frames(&mut resumed, 1).await;
    assert_eq!(frames[0].1, crate::RESET_EVENT, "{frames:?}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_row_that_does_not_decode_is_a_reset_never_a_silent_skip() {
    let (pool, path) = database("malformed").await;
    let log = EventLog::open(&pool).await.expect("log");
    let events = Broadcaster::builder()
        .event_log(&log)
        .keep_alive(None)
        .build();
    let mut stream = events.subscribe(None).expect("stream");
    sqlx::query(
        "INSERT INTO sse_events (name, data, json, topics, private, created_ms) \
         VALUES ('e', '1', 1, 'not a list', 0, 0)",
    )
    .execute(&pool)
    .await
    .expect("a malformed row");
    events.publish("e", &2).expect("publish");
    let frames = frames(&mut stream, 2).await;
    let names: Vec<&str> = frames.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, [crate::RESET_EVENT, "e"]);
    assert!(events.stats().engine.errors >= 1, "counted");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_broadcaster_on_the_log_builds_outside_any_runtime() {
    // As an application builds it before starting its server, or a tool in plain `main`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (pool, path) = rt.block_on(database("no-runtime"));
    let log = rt.block_on(EventLog::open(&pool)).expect("log");
    let events = Broadcaster::builder()
        .event_log(&log)
        .keep_alive(None)
        .build();
    let mut stream = events.subscribe(None).expect("stream");
    events.publish("e", &1).expect("publish");
    let seen = rt.block_on(frames(&mut stream, 1));
    assert_eq!(seen[0].1, "e", "the event went through the table");
    events.shutdown();
    let _ = std::fs::remove_file(path);
}
