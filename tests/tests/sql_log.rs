//! The SQL event log on PostgreSQL: events numbered in the order their transactions commit,
//! whatever order they began or wrote their changes in, live and on replay; a follower cut
//! off from the database catches up without a gap, or gets a reset when the table was
//! trimmed past it meanwhile; a handler that fails after writing, and a commit that fails, leave
//! neither the change nor its event.

#[path = "../../sse-demo/tests/support/proxy.rs"]
mod proxy;

use std::time::Duration;

use actix_web::web::Json;
use futures_util::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use sse_core::sql::{EventLog, Tx, TxError};
use sse_core::{emit_event, Broadcaster, EventStream};
use tokio::sync::oneshot;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The application's table of the tests' handlers.
const CHANGES: &str = "CREATE TABLE changes (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL)";

/// A pool whose tables live in a schema of their own, made for this test.
async fn fresh_pool(name: &str) -> PgPool {
    let schema = format!("{name}_{}", std::process::id());
    fresh_schema(&schema).await;
    pool_on(&schema, URL).await
}

/// A new, empty schema `schema`.
async fn fresh_schema(schema: &str) {
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
}

/// A pool on `url` whose tables are those of `schema`.
async fn pool_on(schema: &str, url: &str) -> PgPool {
    let options: PgConnectOptions = url.parse().expect("URL");
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options.options([("search_path", schema)]))
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
    let (pool, log, events, mut live) = log_with_changes("commit_order", CHANGES).await;
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

/// Why [`write_then_fail`] failed: always after its change was written.
#[derive(Debug)]
enum Failed {
    Tx(TxError),
    AfterWriting,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Tx(err) => err.fmt(f),
            Failed::AfterWriting => f.write_str("failed after writing its change"),
        }
    }
}

impl From<TxError> for Failed {
    fn from(err: TxError) -> Self {
        Failed::Tx(err)
    }
}

/// Writes change `n` in `tx`, then fails.
#[emit_event("written", transactional)]
async fn write_then_fail(tx: Tx, n: i64) -> Result<Json<i64>, Failed> {
    {
        let mut conn = tx.conn().await?;
        let conn = conn.postgres().ok_or(TxError::Ended)?;
        sqlx::query("INSERT INTO changes (n) VALUES ($1)")
            .bind(n)
            .execute(conn)
            .await
            .map_err(|e| TxError::Database(e.into()))?;
    }
    Err(Failed::AfterWriting)
}

/// A log on a fresh schema with a `changes` table made by `table`, its broadcaster, and a
/// stream on it.
async fn log_with_changes(name: &str, table: &str) -> (PgPool, EventLog, Broadcaster, EventStream) {
    let pool = fresh_pool(name).await;
    sqlx::query(table)
        .execute(&pool)
        .await
        .expect("changes table");
    EventLog::ensure_schema(&pool).await.expect("schema");
    let log = EventLog::open(&pool).await.expect("log");
    let events = Broadcaster::builder()
        .event_log(&log)
        .keep_alive(None)
        .build();
    let stream = events.subscribe(None).expect("stream");
    (pool, log, events, stream)
}

/// The rows of `changes` and of the event log.
async fn counts(pool: &PgPool) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .expect(sql)
    };
    (
        count("SELECT count(*) FROM changes").await,
        count("SELECT count(*) FROM sse_events").await,
    )
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432 (started by .ci/run)"]
async fn a_handler_that_fails_after_writing_leaves_neither_its_change_nor_its_event() {
    let (pool, log, events, mut stream) = log_with_changes("fails_after_writing", CHANGES).await;
    let failed = events
        .scope(write_then_fail(log.begin().await.expect("tx"), 1))
        .await;
    assert!(matches!(failed, Err(Failed::AfterWriting)), "{failed:?}");
    assert_eq!(counts(&pool).await, (0, 0), "(changes, events)");
    // The next handler's event is the first the stream gets.
    let (_open, gate) = oneshot::channel::<()>();
    drop(_open);
    let ok = events
        .scope(write(log.begin().await.expect("tx"), 2, gate))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(payloads(&mut stream, 1).await, ["2"]);
    assert_eq!(counts(&pool).await, (1, 1), "(changes, events)");
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432 (started by .ci/run)"]
async fn a_commit_that_fails_leaves_neither_the_change_nor_its_event_and_answers_503() {
    // A deferred unique constraint: the duplicate is refused by the commit itself, after
    // the handler succeeded and its event was written.
    let (pool, log, events, mut stream) = log_with_changes(
        "failed_commit",
        "CREATE TABLE changes (id BIGSERIAL PRIMARY KEY, \
         n BIGINT NOT NULL UNIQUE DEFERRABLE INITIALLY DEFERRED)",
    )
    .await;
    let (open, gate) = oneshot::channel::<()>();
    drop(open);
    let first = events
        .scope(write(log.begin().await.expect("tx"), 1, gate))
        .await;
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(payloads(&mut stream, 1).await, ["1"]);

    let (open, gate) = oneshot::channel::<()>();
    drop(open);
    let duplicate = events
        .scope(write(log.begin().await.expect("tx"), 1, gate))
        .await;
    let Err(err) = duplicate else {
        panic!("the commit of a duplicate succeeded");
    };
    assert!(matches!(err, TxError::Database(_)), "{err:?}");
    assert_eq!(
        actix_web::ResponseError::status_code(&err).as_u16(),
        503,
        "the response says the change was not made"
    );
    assert_eq!(counts(&pool).await, (1, 1), "(changes, events)");
    // Nothing reached the stream: the next event it gets is the next commit's.
    let (open, gate) = oneshot::channel::<()>();
    drop(open);
    let next = events
        .scope(write(log.begin().await.expect("tx"), 2, gate))
        .await;
    assert!(next.is_ok(), "{next:?}");
    assert_eq!(payloads(&mut stream, 1).await, ["2"]);
}

/// What a stream delivered until `count` events named `name` or a reset arrived.
struct Delivered {
    payloads: Vec<String>,
    reset: bool,
}

async fn until_reset_or(stream: &mut EventStream, name: &str, count: usize) -> Delivered {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frames: Vec<&str> = text.split("\n\n").collect();
        let complete = &frames[..frames.len().saturating_sub(1)];
        let reset = complete.iter().any(|f| f.contains("event: sse-reset"));
        let payloads: Vec<String> = complete
            .iter()
            .filter(|f| f.lines().any(|l| l == format!("event: {name}")))
            .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(str::to_owned)
            .collect();
        if reset || payloads.len() >= count {
            return Delivered { payloads, reset };
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!(
                "stream ended or timed out after {} of {count} events: {other:?}",
                payloads.len()
            ),
        }
    }
}

/// Two instances on one schema, `a` reaching PostgreSQL through a proxy that can cut its
/// link, `b` directly, each keeping `history` events.
async fn cut_off_pair(name: &str, history: usize) -> (proxy::Proxy, Broadcaster, Broadcaster) {
    let schema = format!("{name}_{}", std::process::id());
    fresh_schema(&schema).await;
    let direct = pool_on(&schema, URL).await;
    EventLog::ensure_schema(&direct).await.expect("schema");
    let proxy = proxy::Proxy::start("127.0.0.1:5432".parse().expect("address"));
    let through = pool_on(&schema, &format!("postgres://postgres@{}/test", proxy.addr)).await;
    let instance = |log: EventLog| {
        Broadcaster::builder()
            .event_log(&log)
            .history(history)
            .keep_alive(None)
            .build()
    };
    let a = instance(EventLog::open(&through).await.expect("a's log"));
    let b = instance(EventLog::open(&direct).await.expect("b's log"));
    (proxy, a, b)
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432 (started by .ci/run)"]
async fn a_follower_cut_off_from_the_database_catches_up_without_a_gap() {
    let (proxy, a, b) = cut_off_pair("follower_cut", 10_000).await;
    let mut on_a = a.subscribe(None).expect("stream");
    b.publish("tick", &0).expect("publish");
    let before = until_reset_or(&mut on_a, "tick", 1).await;
    assert_eq!(before.payloads, ["0"], "a follows b before the cut");

    proxy.cut(true);
    for i in 1..=50 {
        b.publish("tick", &i).expect("publish");
    }
    // Long enough for a's poll and its reconnects to fail a few times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_a.next())
            .await
            .is_err(),
        "a is cut off: nothing arrives meanwhile"
    );
    proxy.resume();

    let after = until_reset_or(&mut on_a, "tick", 50).await;
    let want: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    assert!(
        !after.reset,
        "a reset where nothing was trimmed: {after:?}",
        after = after.payloads
    );
    assert_eq!(
        after.payloads, want,
        "every event once, in order, from where a was"
    );
    assert_eq!(a.stats().resets, 0);
}

#[tokio::test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432 (started by .ci/run)"]
async fn trimming_the_table_past_a_cut_off_follower_gives_it_a_counted_reset() {
    let (proxy, a, b) = cut_off_pair("follower_trimmed", 20).await;
    let mut on_a = a.subscribe(None).expect("stream");
    b.publish("tick", &0).expect("publish");
    assert_eq!(until_reset_or(&mut on_a, "tick", 1).await.payloads, ["0"]);

    proxy.cut(true);
    for i in 1..=300 {
        b.publish("tick", &i).expect("publish");
    }
    // b trims to its history (every few seconds) while a cannot read.
    let admin = PgPool::connect(URL).await.expect("PostgreSQL");
    let schema = format!("follower_trimmed_{}", std::process::id());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.sse_events"))
            .fetch_one(&admin)
            .await
            .expect("count");
        if rows <= 100 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b did not trim the table: {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_a.next())
            .await
            .is_err(),
        "a is cut off: nothing arrives meanwhile"
    );
    proxy.resume();

    let after = until_reset_or(&mut on_a, "tick", 300).await;
    assert!(
        after.reset,
        "{} of 300 events and no reset: a silent gap",
        after.payloads.len()
    );
    eventually_counted(&a).await;
}

async fn eventually_counted(events: &Broadcaster) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while events.stats().resets == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a reset that a.stats() does not count"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
