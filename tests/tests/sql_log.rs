//! The SQL event log on PostgreSQL: events numbered in the order their transactions commit,
//! whatever order they began or wrote their changes in, live and on replay.

use std::time::Duration;

use actix_web::web::Json;
use futures_util::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use sse_core::sql::{EventLog, Tx, TxError};
use sse_core::{emit_event, Broadcaster, EventStream};
use tokio::sync::oneshot;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A pool whose tables live in a schema of their own, made for this test.
async fn fresh_pool(name: &str) -> PgPool {
    let schema = format!("{name}_{}", std::process::id());
    let admin = PgPool::connect(URL)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .expect("drop schema");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    let options: PgConnectOptions = URL.parse().expect("URL");
    PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("connect")
}

/// Writes change `n` in `tx`, then waits for `gate` before the macro commits it.
#[emit_event("written", transactional)]
async fn write(tx: Tx, n: i64, gate: oneshot::Receiver<()>) -> Result<Json<i64>, TxError> {
    {
        let mut conn = tx.conn().await?;
        let conn = conn.postgres().ok_or(TxError::Ended)?;
        sqlx::query("INSERT INTO changes (n) VALUES ($1)")
            .bind(n)
            .execute(conn)
            .await
            .map_err(|e| TxError::Database(e.into()))?;
    }
    let _ = gate.await;
    Ok(Json(n))
}

/// The payloads of the next `count` events of `stream`.
async fn payloads(stream: &mut EventStream, count: usize) -> Vec<String> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<String> = text
            .split("\n\n")
            .filter(|frame| frame.contains("event: written"))
            .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(str::to_owned)
            .collect();
        if found.len() >= count {
            return found;
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("stream ended or timed out after {found:?}: {other:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432 (started by .ci/run)"]
async fn events_are_numbered_in_commit_order_when_transactions_overlap() {
    let pool = fresh_pool("commit_order").await;
    sqlx::query("CREATE TABLE changes (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .expect("changes table");
    EventLog::ensure_schema(&pool).await.expect("schema");
    let log = EventLog::open(&pool).await.expect("log");
    let events = Broadcaster::builder()
        .event_log(&log)
        .keep_alive(None)
        .build();
    let mut live = events.subscribe(None).expect("stream");
    // The stream starts with the id it starts after: where a replay of both begins.
    let first = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .ok()
        .flatten()
        .and_then(Result::ok)
        .expect("the stream's first frame");
    let start = String::from_utf8_lossy(&first)
        .lines()
        .find_map(|l| l.strip_prefix("id: ").map(str::to_owned))
        .expect("an id");

    // T1 begins and writes its change first, then waits; T2 writes and commits meanwhile.
    let (open_t1, gate_t1) = oneshot::channel();
    let tx1 = log.begin().await.expect("t1");
    let t1 = tokio::spawn({
        let events = events.clone();
        async move { events.scope(write(tx1, 1, gate_t1)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (open_t2, gate_t2) = oneshot::channel();
    let _ = open_t2.send(());
    let t2 = events
        .scope(write(log.begin().await.expect("t2"), 2, gate_t2))
        .await;
    assert!(t2.is_ok(), "{t2:?}");
    let _ = open_t1.send(());
    let t1 = t1.await.expect("t1 task");
    assert!(t1.is_ok(), "{t1:?}");

    let changes: Vec<i64> = sqlx::query_scalar("SELECT n FROM changes ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("changes");
    assert_eq!(changes, [1, 2], "T1 wrote its change first");
    assert_eq!(
        payloads(&mut live, 2).await,
        ["2", "1"],
        "live: in commit order"
    );
    let mut replay = events
        .subscribe(Some(start.parse().expect("an event id")))
        .expect("stream");
    assert_eq!(
        payloads(&mut replay, 2).await,
        ["2", "1"],
        "a replay gives the same order"
    );
}
