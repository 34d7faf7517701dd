//! The Redis Streams backend end to end: several instances sharing one stream, replay on
//! another instance, outages and a Redis restarted empty.

mod common;
#[path = "../../sse-demo/tests/support/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use common::Event;
use common::{eventually, serve, SseClient, WAIT};
use sse_core::{Broadcaster, BroadcasterBuilder, RESET_EVENT};
use test_support::servers::Redis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATH: &str = "/events";
const SHARED: &str = "redis://127.0.0.1:6379";

/// A stream key no other test (or earlier run) uses.
fn unique_stream(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sse-test:{test}:{}:{nanos}", std::process::id())
}

/// A unique stream key on the shared Redis, deleted (with its epoch key) when dropped.
struct SharedStream(String);

impl SharedStream {
    fn new(test: &str) -> Self {
        Self(unique_stream(test))
    }
}

impl Drop for SharedStream {
    fn drop(&mut self) {
        use std::io::Write;
        if let Ok(mut conn) = std::net::TcpStream::connect("127.0.0.1:6379") {
            let _ = write!(conn, "DEL {0} {0}:epoch\r\n", self.0);
        }
    }
}

fn instance(url: &str, stream: &str) -> (Broadcaster, common::TestServer) {
    let events = Broadcaster::builder()
        .redis(url, stream)
        .expect("valid Redis URL")
        .keep_alive(None)
        .build();
    let server = serve(&events, PATH);
    (events, server)
}

/// An instance built from `builder` (without keep-alives), connected to Redis, served, and
/// one client subscribed to it.
async fn subscribed(builder: BroadcasterBuilder) -> (Broadcaster, common::TestServer, SseClient) {
    let events = builder.keep_alive(None).build();
    let server = serve(&events, PATH);
    connected(&events).await;
    let client = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    (events, server, client)
}

/// Waits until the instance has read the stream's epoch from Redis: its ids then name a
/// stream entry (`<epoch>-<ms>-<n>`).
async fn connected(events: &Broadcaster) {
    eventually("connected to Redis", || {
        events.last_event_id().to_string().matches('-').count() == 2
    })
    .await;
}

/// Events with data (not the id-only preamble), skipping nothing else.
async fn take_data(client: &mut SseClient, n: usize) -> Vec<Event> {
    client.take(n).await
}

#[actix_web::test]
#[ignore = "needs the redis-server binary"]
async fn nothing_is_lost_or_repeated_through_a_redis_outage() {
    let mut redis = Redis::start().await;
    let (events, server) = instance(&redis.url(), &unique_stream("outage"));
    connected(&events).await;
    let mut client = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;

    let total = 200;
    let started = Instant::now();
    let mut restarted = false;
    for i in 0..total {
        if i == 50 {
            redis.stop();
        }
        if !restarted && i > 50 && started.elapsed() > Duration::from_secs(3) {
            redis.restart().await;
            restarted = true;
        }
        events.publish("tick", &i).expect("publish never fails");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(restarted);
    // Redis restarted empty: a new epoch, so connected subscribers are told with one reset
    // (another instance's unread events would be gone); this instance's own events all come.
    let got = take_data(&mut client, total + 1).await;
    let resets = got.iter().filter(|e| e.event == RESET_EVENT).count();
    assert_eq!(resets, 1, "{got:?}");
    let ticks: Vec<u64> = got
        .iter()
        .filter(|e| e.event == "tick")
        .map(|e| e.data.parse().unwrap())
        .collect();
    assert_eq!(ticks, (0..total as u64).collect::<Vec<_>>());
    client.assert_quiet(Duration::from_millis(300)).await;
    let stats = events.stats();
    assert_eq!(stats.engine.outbox, 0);
    assert_eq!(stats.engine.outbox_dropped, 0);
    assert!(stats.engine.reconnects >= 1, "{stats:?}");
    assert!(stats.engine.errors >= 1, "{stats:?}");
}

#[actix_web::test]
#[ignore = "needs the redis-server binary"]
async fn an_acl_user_with_a_password_shares_the_stream_and_a_wrong_password_is_refused() {
    // A private server: the shared one's users are left alone.
    let redis = Redis::start().await;
    for (command, reply) in [
        (
            "ACL SETUSER sse-app on >app-pass ~sse-acl:* +@all",
            "+OK\r\n",
        ),
        // From now on only the ACL user gets in.
        ("ACL SETUSER default off", "+OK\r\n"),
    ] {
        assert!(redis.command(command, reply).await, "{command}");
    }
    let url = |password: &str| format!("redis://sse-app:{password}@127.0.0.1:{}", redis.port);
    let (a, server_a) = instance(&url("app-pass"), "sse-acl:events");
    let (b, server_b) = instance(&url("app-pass"), "sse-acl:events");
    connected(&a).await;
    connected(&b).await;
    let mut on_b = SseClient::connect(&server_b.url(PATH), None).await;
    eventually("subscribed", || b.stats().subscribers == 1).await;
    a.publish("e", &1).unwrap();
    assert_eq!(take_data(&mut on_b, 1).await[0].data, "1");
    assert_eq!(a.stats().engine.errors + b.stats().engine.errors, 0);
    drop(server_a);

    let (wrong, _server) = instance(&url("wrong"), "sse-acl:events");
    eventually("the wrong password is refused", || {
        wrong.stats().engine.errors >= 2
    })
    .await;
    assert!(
        wrong.last_event_id().to_string().matches('-').count() == 1,
        "never connected"
    );
    assert!(
        !format!("{wrong:?}").contains("app-pass") && !format!("{a:?}").contains("app-pass"),
        "the password shows in Debug"
    );
}

#[actix_web::test]
#[ignore = "needs the redis-server binary"]
async fn a_flush_without_restart_is_noticed_and_stale_ids_get_a_reset() {
    let redis = Redis::start().await;
    let (events, server) = instance(&redis.url(), &unique_stream("flush"));
    connected(&events).await;
    let mut client = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    events.publish("e", &1).unwrap();
    let stale = client.next().await.id;

    assert!(redis.command("FLUSHALL", "+OK\r\n").await);
    eventually("the new epoch seen", || {
        events.stats().engine.epoch_changes == 1
    })
    .await;
    // The subscriber that stayed connected is told (what it had is gone from the store),
    // then goes on with the new stream's ids.
    assert_eq!(client.next().await.event, RESET_EVENT);
    events.publish("e", &2).unwrap();
    let next = client.next().await;
    assert_eq!(next.data, "2");
    assert_ne!(next.id.split('-').next(), stale.split('-').next());
    let mut late = SseClient::connect(&server.url(PATH), Some(&stale)).await;
    assert_eq!(late.next().await.event, RESET_EVENT);
}

#[actix_web::test]
#[ignore = "needs the redis-server binary"]
async fn a_full_outbox_drops_the_oldest_and_subscribers_get_a_reset() {
    let mut redis = Redis::start().await;
    let url = redis.url();
    let builder = Broadcaster::builder()
        .redis(&url, &unique_stream("overflow"))
        .expect("valid Redis URL")
        .outbox(10);
    let (events, _server, mut client) = subscribed(builder).await;
    redis.stop();
    for i in 0..25 {
        events.publish("e", &i).expect("publish never fails");
    }
    assert_eq!(events.stats().engine.outbox, 10);
    assert_eq!(events.stats().engine.outbox_dropped, 15);
    redis.restart().await;
    // Redis came back empty (a new epoch: one reset), and the outbox lost 15 (another).
    let resets = take_data(&mut client, 2).await;
    assert!(resets.iter().all(|e| e.event == RESET_EVENT), "{resets:?}");
    assert!(
        resets
            .iter()
            .any(|e| e.data.contains("15 events were lost")),
        "{resets:?}"
    );
    let rest = take_data(&mut client, 10).await;
    let data: Vec<_> = rest.iter().map(|e| e.data.clone()).collect();
    assert_eq!(data, (15..25).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// Delivery from a publish on one instance to a subscriber of another, through the shared
/// Redis, beside the in-memory backend: every event arrives, in order, and promptly. The
/// bounds are generous (loopback answers in about a millisecond; a busy CI machine may take
/// far longer), so a failure means events stall, not a slow machine; the figures are printed
/// too. Careful measurements are sse-bench's (`fanout --engine redis`).
#[actix_web::test]
#[ignore = "needs a Redis server on 127.0.0.1:6379 (started by .ci/run)"]
async fn events_cross_instances_through_redis_all_in_order_and_promptly() {
    /// The bound on the 99th percentile of one event's delivery.
    const P99: Duration = Duration::from_millis(250);
    /// The bound on a burst of [`BURST`] events, until the last arrives.
    const BURST_WITHIN: Duration = Duration::from_secs(5);
    const BURST: usize = 1000;
    let stream = SharedStream::new("measure");
    let stream = &stream.0;
    let (a, _server_a) = instance(SHARED, stream);
    let (b, server_b) = instance(SHARED, stream);
    connected(&a).await;
    connected(&b).await;
    let memory = Broadcaster::builder().keep_alive(None).build();
    let server_m = serve(&memory, PATH);
    for (label, publisher, subscribed_to, url) in [
        ("in-memory", &memory, &memory, server_m.url(PATH)),
        ("redis A->B", &a, &b, server_b.url(PATH)),
    ] {
        let mut client = SseClient::connect(&url, None).await;
        eventually("subscribed", || subscribed_to.stats().subscribers == 1).await;
        // Latency: one event at a time.
        let mut lat = Vec::new();
        for i in 0..300 {
            let t = Instant::now();
            publisher.publish("e", &i).unwrap();
            let event = client.next().await;
            lat.push(t.elapsed());
            assert_eq!(event.data, i.to_string(), "{label}: event {i} out of order");
        }
        lat.sort();
        let (p50, p99) = (lat[lat.len() / 2], lat[lat.len() * 99 / 100]);
        // Throughput: a burst of events, until the last arrives.
        let t = Instant::now();
        for i in 0..BURST {
            publisher.publish("e", &i).unwrap();
        }
        let got: Vec<String> = client
            .take(BURST)
            .await
            .into_iter()
            .map(|e| e.data)
            .collect();
        let burst = t.elapsed();
        let rate = BURST as f64 / burst.as_secs_f64();
        println!(
            "{label}: latency p50 {p50:?} p99 {p99:?}; throughput {rate:.0} events/s ({BURST} \
             events, 1 subscriber)"
        );
        let want: Vec<String> = (0..BURST).map(|i| i.to_string()).collect();
        assert!(
            got == want,
            "{label}: the burst arrived incomplete or out of order"
        );
        assert!(p99 < P99, "{label}: p99 {p99:?} over {P99:?} (p50 {p50:?})");
        assert!(
            burst < BURST_WITHIN,
            "{label}: {BURST} events took {burst:?}"
        );
        client.assert_quiet(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
#[ignore = "needs a Redis server on 127.0.0.1:6379 (started by .ci/run)"]
async fn an_instance_cut_off_while_others_publish_past_the_trimming_gets_a_reset_not_a_gap() {
    let stream = SharedStream::new("gap");
    let stream = &stream.0;
    // Instance a reaches Redis through a proxy that can cut its link; b directly.
    let proxy = proxy::Proxy::start("127.0.0.1:6379".parse().unwrap());
    let small = |url: &str| {
        Broadcaster::builder()
            .redis(url, stream)
            .expect("valid Redis URL")
            .history(20)
            .keep_alive(None)
            .build()
    };
    let a = small(&format!("redis://{}", proxy.addr));
    let b = small(SHARED);
    let server_a = serve(&a, PATH);
    connected(&a).await;
    connected(&b).await;
    let mut on_a = SseClient::connect(&server_a.url(PATH), None).await;
    eventually("subscribed", || a.stats().subscribers == 1).await;
    b.publish("before", &0).unwrap();
    assert_eq!(on_a.next().await.event, "before");

    proxy.cut(true);
    // Far past the trimming (`MAXLEN ~ 20` trims whole nodes of 100 entries).
    for i in 0..600 {
        b.publish("during", &i).unwrap();
    }
    eventually("b's outbox sent", || b.stats().engine.outbox == 0).await;
    proxy.resume();

    let (during, reset) = on_a.during_until_reset(600).await;
    assert!(
        reset.is_some() || during == 600,
        "{during} of 600 events and no reset: a silent gap"
    );
    let resets = a.stats().resets;
    assert!(
        resets >= 1 || during == 600,
        "a reset ({reset:?}) that a.stats() does not count"
    );
}

#[actix_web::test]
#[ignore = "needs the redis-server binary"]
async fn events_queued_at_shutdown_reach_redis_before_flushed_returns() {
    let mut redis = Redis::start().await;
    let stream = unique_stream("flush-at-exit");
    let events = Broadcaster::builder()
        .redis(&redis.url(), &stream)
        .expect("valid Redis URL")
        .build();
    connected(&events).await;
    redis.stop();
    for i in 0..50 {
        events.publish("e", &i).expect("publish never fails");
    }
    assert_eq!(events.stats().engine.outbox, 50);
    events.shutdown();
    // Redis comes back within the flush timeout (5 s by default).
    redis.restart().await;
    tokio::time::timeout(Duration::from_secs(10), events.flushed())
        .await
        .expect("flushed within the flush timeout");
    assert!(
        redis.command(&format!("XLEN {stream}"), ":50\r\n").await,
        "the 50 queued events are in the stream"
    );
    assert_eq!(events.stats().engine.outbox_dropped, 0);
}

#[actix_web::test]
#[ignore = "needs the redis-server binary"]
async fn what_cannot_reach_redis_by_the_flush_timeout_is_counted_as_dropped() {
    let mut redis = Redis::start().await;
    let events = Broadcaster::builder()
        .redis(&redis.url(), &unique_stream("flush-timeout"))
        .expect("valid Redis URL")
        .flush_timeout(Duration::from_millis(300))
        .build();
    connected(&events).await;
    redis.stop();
    for i in 0..5 {
        events.publish("e", &i).expect("publish never fails");
    }
    events.shutdown();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), events.flushed())
        .await
        .expect("flushed gives up at the flush timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let stats = events.stats().engine;
    assert_eq!((stats.outbox, stats.outbox_dropped), (0, 5), "{stats:?}");
}

/// Watches a Redis server's commands (`MONITOR`).
struct Monitor {
    conn: tokio::net::TcpStream,
}

impl Monitor {
    async fn start(port: u16) -> Monitor {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to redis-server");
        conn.write_all(b"MONITOR\r\n").await.expect("send MONITOR");
        let mut ok = [0u8; 5];
        tokio::time::timeout(WAIT, conn.read_exact(&mut ok))
            .await
            .expect("MONITOR answers")
            .expect("read");
        assert_eq!(&ok, b"+OK\r\n");
        Monitor { conn }
    }

    /// The arguments after the key of every bounded `XRANGE` on `key` since the last call
    /// (clients' and scripts'; the reader's reads up to `+` are left out), in order; reads
    /// until 500 ms pass quietly.
    async fn xranges(&mut self, key: &str) -> Vec<Vec<String>> {
        let mut text = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), self.conn.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|line| line.split_once("\"XRANGE\" ").map(|(_, args)| args))
            // `"key" "a" "b" ...`: the quoted parts are the odd pieces.
            .map(|args| {
                args.split('"')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|args| args.first().is_some_and(|k| k == key))
            .map(|args| args[1..].to_vec())
            .filter(|args| args.get(1).is_some_and(|upto| upto != "+"))
            .collect()
    }
}

/// Two instances on one stream for the replay tests: A publishes and keeps them all (in Redis
/// too: `MAXLEN ~ 1000`), with a client reading it; B keeps only the last 10 locally, so a
/// client resuming on B from an older id is answered from Redis. B is not served yet.
struct Replaying {
    a: Broadcaster,
    _server_a: common::TestServer,
    live: SseClient,
    b: Broadcaster,
}

impl Replaying {
    async fn start(redis: &Redis, stream: &str) -> Replaying {
        let redis_of = |history| {
            Broadcaster::builder()
                .redis(&redis.url(), stream)
                .expect("valid Redis URL")
                .history(history)
        };
        let (a, _server_a, live) = subscribed(redis_of(1000)).await;
        let b = redis_of(10).keep_alive(None).build();
        connected(&b).await;
        Replaying {
            a,
            _server_a,
            live,
            b,
        }
    }
}

#[actix_web::test]
#[ignore = "needs the redis-server binary"]
async fn a_replay_checks_that_the_resumed_entry_exists_before_reading_a_page() {
    let redis = Redis::start().await;
    let stream = unique_stream("existence");
    let Replaying {
        a,
        _server_a,
        mut live,
        b,
    } = Replaying::start(&redis, &stream).await;
    let server = serve(&b, PATH);
    for i in 0..50 {
        a.publish("e", &i).unwrap();
    }
    let ids: Vec<String> = take_data(&mut live, 50)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    eventually("B read every entry", || {
        b.last_event_id().to_string() == ids[49]
    })
    .await;
    let mut monitor = Monitor::start(redis.port).await;
    // `<epoch>-<ms>-<n>`: the entry is `<ms>-<n>`.
    let (epoch, entry) = ids[4].split_once('-').expect("an engine id");

    // An entry the stream holds, older than the local history: first one cheap check that it
    // is there, then the page after it (in one script, so nothing is trimmed between them).
    let mut resumed = SseClient::connect(&server.url(PATH), Some(&ids[4])).await;
    let replayed = take_data(&mut resumed, 45).await;
    assert_eq!(
        (replayed[0].data.as_str(), replayed[44].data.as_str()),
        ("5", "49")
    );
    let xranges = monitor.xranges(&stream).await;
    assert_eq!(
        xranges.first(),
        Some(&vec![entry.to_owned(), entry.to_owned()]),
        "{xranges:?}"
    );
    assert!(
        xranges[1..]
            .iter()
            .any(|args| args[0] == format!("({entry}")),
        "{xranges:?}"
    );

    // An entry the stream never held: the check alone, then a reset; no page is read.
    let missing = format!("{epoch}-1-0");
    let mut stale = SseClient::connect(&server.url(PATH), Some(&missing)).await;
    assert_eq!(stale.next().await.event, RESET_EVENT);
    let xranges = monitor.xranges(&stream).await;
    assert_eq!(xranges, vec![vec!["1-0".to_owned(), "1-0".to_owned()]]);
}

/// One RESP array command.
fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out
}

#[actix_web::test]
#[ignore = "needs a Redis server on 127.0.0.1:6379 (started by .ci/run)"]
async fn entries_trimmed_before_a_waiting_reader_wakes_give_a_reset_not_a_gap() {
    // The reader waits in `XREAD BLOCK` after its last entry. One transaction adds 100
    // entries and trims all but the newest 10: the reader wakes once, after the trim, to 10
    // entries that do not follow the one it read last.
    let stream = SharedStream::new("trimmed-while-waiting");
    let (events, _server, mut client) = subscribed(
        Broadcaster::builder()
            .redis(SHARED, &stream.0)
            .expect("URL"),
    )
    .await;
    connected(&events).await;
    events.publish("before", &0).unwrap();
    assert_eq!(take_data(&mut client, 1).await[0].event, "before");
    // Let the reader go back to waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut script = resp(&["MULTI"]);
    for i in 0..100 {
        let data = i.to_string();
        script.push_str(&resp(&[
            "XADD", &stream.0, "*", "n", "during", "d", &data, "t", "",
        ]));
    }
    script.push_str(&resp(&["XTRIM", &stream.0, "MAXLEN", "10"]));
    script.push_str(&resp(&["EXEC"]));
    let mut conn = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .expect("Redis");
    conn.write_all(script.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let deadline = Instant::now() + WAIT;
    // The trim's count, the last reply of the transaction.
    while !String::from_utf8_lossy(&reply).contains("\r\n:") {
        assert!(Instant::now() < deadline, "no EXEC reply: {reply:?}");
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!("no EXEC reply in time: {}", String::from_utf8_lossy(&reply))
            })
            .expect("read");
        assert!(n > 0, "Redis closed the connection");
        reply.extend_from_slice(&buf[..n]);
    }

    let (during, reset) = client.during_until_reset(100).await;
    assert!(
        reset.is_some(),
        "{during} of 100 events and no reset: 90 were trimmed unread, a silent gap"
    );
    assert!(events.stats().resets >= 1, "the reset is counted");
}
