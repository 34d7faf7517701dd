//! One suite for every event log engine: the in-memory fake, Redis Streams and NATS
//! JetStream run the same cases (several instances sharing one stream, resuming on another
//! instance, outages, restarts, trimming, a full outbox). The server engines start private
//! servers (`redis-server`, `nats-server`), hence `#[ignore]`; CI runs them.

#[path = "../common/mod.rs"]
mod common;
mod engine;
#[path = "../../../sse-demo/tests/support/proxy.rs"]
mod proxy;
mod servers;

use std::time::{Duration, Instant};

use common::Event;
use common::{eventually, serve, SseClient};
use engine::{connected, Engine};
use serde_json::json;
use sse_core::{Broadcaster, BroadcasterBuilder, RESET_EVENT};

const PATH: &str = "/events";

async fn instance(builder: BroadcasterBuilder) -> (Broadcaster, common::TestServer) {
    let events = builder.keep_alive(None).build();
    connected(&events).await;
    let server = serve(&events, PATH);
    (events, server)
}

async fn two_instances_deliver_the_same_events_with_the_same_ids_in_order<E: Engine>() {
    let mut engine = E::new("fanout").await;
    let (a, server_a) = instance(engine.builder()).await;
    let (b, server_b) = instance(engine.builder()).await;
    let mut on_a = SseClient::connect(&server_a.url(PATH), None).await;
    let mut on_b = SseClient::connect(&server_b.url(PATH), None).await;
    eventually("subscribed", || {
        a.stats().subscribers == 1 && b.stats().subscribers == 1
    })
    .await;
    for i in 0..20 {
        let publisher = if i % 2 == 0 { &a } else { &b };
        publisher.publish("e", &json!({ "n": i })).unwrap();
    }
    let got_a = on_a.take(20).await;
    let got_b = on_b.take(20).await;
    let key = |e: &Event| (e.id.clone(), e.event.clone(), e.data.clone());
    assert_eq!(
        got_a.iter().map(key).collect::<Vec<_>>(),
        got_b.iter().map(key).collect::<Vec<_>>()
    );
    let mut ns: Vec<u64> = got_a
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Each instance's events keep their order; together, each exactly once.
    for parity in [0, 1] {
        let own: Vec<_> = ns.iter().copied().filter(|n| n % 2 == parity).collect();
        assert!(own.windows(2).all(|w| w[0] < w[1]), "{ns:?}");
    }
    ns.sort_unstable();
    assert_eq!(ns, (0..20).collect::<Vec<_>>());
    on_a.assert_quiet(Duration::from_millis(200)).await;
    on_b.assert_quiet(Duration::from_millis(50)).await;
    assert_eq!(a.stats().engine.errors + b.stats().engine.errors, 0);
}

async fn a_client_resumes_on_the_other_instance<E: Engine>() {
    let mut engine = E::new("resume").await;
    let (a, server_a) = instance(engine.builder()).await;
    let (b, server_b) = instance(engine.builder()).await;
    let mut client = SseClient::connect(&server_a.url(PATH), None).await;
    eventually("subscribed", || a.stats().subscribers == 1).await;
    for i in 0..5 {
        a.publish("e", &i).unwrap();
    }
    let seen = client.take(5).await;
    drop(client);
    for i in 5..10 {
        if i % 2 == 0 { &a } else { &b }.publish("e", &i).unwrap();
    }
    let last = &seen[4].id;
    let mut on_b = SseClient::connect(&server_b.url(PATH), Some(last)).await;
    let missed = on_b.take(5).await;
    let mut data: Vec<_> = missed.iter().map(|e| e.data.clone()).collect();
    data.sort();
    assert_eq!(data, ["5", "6", "7", "8", "9"]);
    on_b.assert_quiet(Duration::from_millis(200)).await;

    // An instance started after those events has none of them locally: the store answers.
    let (c, server_c) = instance(engine.builder()).await;
    let mut on_c = SseClient::connect(&server_c.url(PATH), Some(last)).await;
    let from_store = on_c.take(5).await;
    let key = |e: &Event| (e.id.clone(), e.data.clone());
    assert_eq!(
        from_store.iter().map(key).collect::<Vec<_>>(),
        missed.iter().map(key).collect::<Vec<_>>()
    );
    on_c.assert_quiet(Duration::from_millis(200)).await;
    c.publish("e", &10).unwrap();
    assert_eq!(on_c.next().await.data, "10");
    assert_eq!(c.stats().resumed, 1);
}

/// A rolling deploy: a client resumes into an instance that has just started and not yet
/// read its engine's epoch. It waits for the link and gets what it missed, not a reset.
async fn a_client_resuming_into_an_instance_not_yet_linked_gets_what_it_missed<E: Engine>() {
    let mut engine = E::new("unlinked").await;
    let (a, server_a) = instance(engine.builder()).await;
    let mut client = SseClient::connect(&server_a.url(PATH), None).await;
    eventually("subscribed", || a.stats().subscribers == 1).await;
    a.publish("e", &0).unwrap();
    let last = client.take(1).await[0].id.clone();
    drop(client);
    a.publish("e", &1).unwrap();
    a.publish("e", &2).unwrap();
    eventually("a's outbox sent", || a.stats().engine.outbox == 0).await;

    // B starts with its link to the engine down, so it has not read the epoch.
    let builder = engine.cuttable();
    engine.cut(true);
    let b = builder.keep_alive(None).build();
    let server_b = serve(&b, PATH);
    let url = server_b.url(PATH);
    let (mut on_b, ()) = tokio::join!(SseClient::connect(&url, Some(&last)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        engine.cut(false);
    });
    let missed: Vec<String> = on_b.take(2).await.into_iter().map(|e| e.data).collect();
    assert_eq!(missed, ["1", "2"]);
    on_b.assert_quiet(Duration::from_millis(200)).await;
    assert_eq!(b.stats().resumed, 1);
}

async fn an_engine_stopped_for_two_seconds_under_steady_publishing_loses_nothing<E: Engine>() {
    let mut engine = E::new("outage").await;
    let (events, server) = instance(engine.builder()).await;
    let mut client = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    let total = 300;
    let mut stopped_at = None;
    for i in 0..total {
        if i == 50 {
            engine.stop().await;
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(2)) {
            engine.start().await;
            stopped_at = None;
        }
        events.publish("tick", &i).expect("publish never fails");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped_at.is_none(), "the engine came back");
    // An engine that lost its data on restart is a new epoch: one reset. Our own events
    // all come, in order, once.
    let resets = usize::from(!E::KEEPS_DATA);
    let got = client.take(total + resets).await;
    assert_eq!(
        got.iter().filter(|e| e.event == RESET_EVENT).count(),
        resets,
        "{got:?}"
    );
    let ticks: Vec<u64> = got
        .iter()
        .filter(|e| e.event == "tick")
        .map(|e| e.data.parse().unwrap())
        .collect();
    assert_eq!(ticks, (0..total as u64).collect::<Vec<_>>());
    client.assert_quiet(Duration::from_millis(300)).await;
    let stats = events.stats();
    assert_eq!(
        (stats.engine.outbox, stats.engine.outbox_dropped),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.emit_failures, 0);
}

async fn a_restarted_empty_engine_gives_resets<E: Engine>() {
    let mut engine = E::new("restart").await;
    let (events, server) = instance(engine.builder()).await;
    let mut live = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    events.publish("e", &1).unwrap();
    let stale = live.next().await.id;
    let stale_epoch = events.last_event_id().epoch();

    engine.restart_empty().await;
    eventually("the new epoch seen", || {
        events.last_event_id().epoch() != stale_epoch
    })
    .await;
    // The subscriber that stayed connected is told; a client resuming from before too.
    assert_eq!(live.next().await.event, RESET_EVENT);
    let mut late = SseClient::connect(&server.url(PATH), Some(&stale)).await;
    let reset = late.next().await;
    assert_eq!(reset.event, RESET_EVENT);
    assert_ne!(reset.id, stale);
    events.publish("e", &2).unwrap();
    assert_eq!(late.next().await.data, "2");
    assert_eq!(live.next().await.data, "2");
}

async fn trimming_past_a_reader_gives_a_reset_never_a_silent_gap<E: Engine>() {
    let mut engine = E::new("gap").await;
    let (a, server_a) = instance(engine.cuttable().history(20)).await;
    let (b, _server_b) = instance(engine.builder().history(20)).await;
    let mut on_a = SseClient::connect(&server_a.url(PATH), None).await;
    eventually("subscribed", || a.stats().subscribers == 1).await;
    b.publish("before", &0).unwrap();
    assert_eq!(on_a.next().await.event, "before");

    engine.cut(true);
    // Far past the limits, in many store entries (engines batch what is queued at once).
    for round in 0..60 {
        for i in 0..10 {
            b.publish("during", &(round * 10 + i)).unwrap();
        }
        eventually("b's outbox sent", || b.stats().engine.outbox == 0).await;
    }
    engine.trim(20).await;
    engine.cut(false);

    let (during, reset) = on_a.during_until_reset(600).await;
    assert!(
        reset.is_some(),
        "{during} of 600 events and no reset: a silent gap"
    );
}

/// A resume from far back is replayed from the engine one page at a time, as the client
/// reads. Entries trimmed between two pages end the replay with a reset: the next page would
/// start after an entry that is gone, and skip what was trimmed.
async fn trimming_between_two_replay_pages_gives_a_reset_never_a_silent_gap<E: Engine>() {
    let mut engine = E::new("pages").await;
    let (a, server_a) = instance(engine.builder()).await;
    // B keeps 10 events itself: the resume is replayed from the engine, 256 events a page.
    let b = engine.builder().history(10).keep_alive(None).build();
    connected(&b).await;
    let server_b = common::serve_with_send_buffer(&b, PATH, 8192);
    let mut live = SseClient::connect(&server_a.url(PATH), None).await;
    eventually("subscribed", || a.stats().subscribers == 1).await;
    // 4 KiB each: a page (1 MiB) is far more than the sockets hold for a client that does
    // not read, so the third page is asked for only once the client reads the first.
    let pad = "x".repeat(4096);
    let publish = |n: usize| a.publish("e", &json!({ "n": n, "pad": pad })).unwrap();
    for n in 0..540 {
        publish(n);
    }
    eventually("a's outbox sent", || a.stats().engine.outbox == 0).await;
    // The newest 60 one store entry each (engines batch what is queued at once): trimming
    // to 50 entries then keeps events 550 to 599 on every engine.
    for n in 540..600 {
        publish(n);
        eventually("a's outbox sent", || a.stats().engine.outbox == 0).await;
    }
    let ids: Vec<String> = live.take(600).await.into_iter().map(|e| e.id).collect();
    eventually("B read every entry", || {
        b.last_event_id().to_string() == ids[599]
    })
    .await;

    let path = format!("{PATH}?lastEventId={}", ids[0]);
    let mut client = common::RawClient::connect(server_b.addr, &path, Some(4096)).await;
    // The first page is on its way: trimmed now, the store no longer has where the third
    // page starts (event 512), while it still has the replay's end.
    let mut raw = client.read_until("\"n\":1,").await;
    engine.trim(50).await;
    let too_old = "older than the server's history\"}";
    raw += &read_until_any(&mut client, &[too_old, "\"n\":599,"]).await;

    let body = common::dechunk(&raw);
    // The last frame may be cut where the reading stopped; a reset's ends with its reason.
    let (complete, last) = test_support::sse::parse_body(&body);
    let mut numbers = Vec::new();
    let mut reset = None;
    for frame in complete.iter().chain([&last]) {
        match (frame.event.as_deref(), &frame.data) {
            (Some(RESET_EVENT), data) => {
                reset = data.clone();
                break;
            }
            (Some("e"), Some(data)) if !std::ptr::eq(frame, &last) => {
                let value: serde_json::Value = serde_json::from_str(data).expect("JSON data");
                numbers.push(value["n"].as_u64().expect("n"));
            }
            _ => {}
        }
    }
    let hole = (1..).zip(&numbers).find(|(want, got)| want != *got);
    assert_eq!(
        hole,
        None,
        "events before the reset are the ones after the resumed id (1, 2, ...), with no hole \
         ({} events)",
        numbers.len()
    );
    assert!(
        (256..599).contains(&numbers.len()),
        "the first page came whole, and the reset before the replay's end: {}",
        numbers.len()
    );
    let reason = reset.expect("a reset");
    assert!(
        reason.contains("older than the server's history"),
        "{reason}"
    );
}

/// Reads the raw response until one of `needles` is in it, the stream ends or [`common::WAIT`]
/// passes.
async fn read_until_any(client: &mut common::RawClient, needles: &[&str]) -> String {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(common::WAIT, async {
        loop {
            let n = client.stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            // Only what this read could have completed.
            let tail = String::from_utf8_lossy(&seen[seen.len().saturating_sub(n + 64)..]);
            if needles.iter().any(|needle| tail.contains(needle)) {
                return;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

async fn the_outbox_bound_drops_the_oldest_counted<E: Engine>() {
    let mut engine = E::new("overflow").await;
    let (events, server) = instance(engine.builder().outbox(10)).await;
    let mut client = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    engine.stop().await;
    for i in 0..25 {
        events.publish("e", &i).expect("publish never fails");
    }
    let stats = events.stats().engine;
    assert_eq!((stats.outbox, stats.outbox_dropped), (10, 15), "{stats:?}");
    engine.start().await;
    // The loss is told with a reset (and, from an engine that came back empty, the new
    // epoch with another); then the 10 newest events. A batch already on its way when the
    // engine went down may still arrive, and its reset then tells the loss in two parts.
    let mut lost = 0;
    let mut data: Vec<u64> = Vec::new();
    while data.last() != Some(&24) {
        let event = client.next().await;
        if event.event == RESET_EVENT {
            lost += event
                .data
                .split(|c: char| !c.is_ascii_digit())
                .find_map(|n| n.parse::<u64>().ok())
                .filter(|_| event.data.contains("events were lost"))
                .unwrap_or(0);
        } else {
            data.push(event.data.parse().unwrap());
        }
    }
    assert_eq!(lost, 15);
    assert!(data.windows(2).all(|w| w[0] < w[1]), "{data:?}");
    assert_eq!(data[data.len() - 10..], (15..25).collect::<Vec<_>>());
}

/// Every case, for one engine.
/// An instance serving the stream endpoint and a Mercure hub (anonymous subscribers,
/// publishers' tokens signed with [`MERCURE_KEY`]).
async fn hub_instance(builder: BroadcasterBuilder) -> (Broadcaster, common::TestServer) {
    use sse_core::mercure::{JwtKey, Mercure};
    let events = builder.keep_alive(None).build();
    connected(&events).await;
    let hub = Mercure::new()
        .publisher_key(JwtKey::hs256(MERCURE_KEY))
        .anonymous(true);
    let e = events.clone();
    let server = common::start(1, move |cfg| {
        e.service(PATH)(cfg);
        e.mercure(hub.clone())(cfg);
    });
    (events, server)
}

const MERCURE_KEY: &[u8] = b"mercure publisher key for the engine tests";

async fn a_publisher_id_travels_with_the_entry_and_resumes_on_the_other_instance<E: Engine>() {
    let mut engine = E::new("mercure").await;
    let (a, server_a) = hub_instance(engine.builder()).await;
    let (b, server_b) = hub_instance(engine.builder()).await;
    let hub = "/.well-known/mercure?topic=books/{id}";
    let mut on_b = SseClient::connect(&server_b.url(hub), None).await;
    eventually("subscribed", || b.stats().subscribers == 1).await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "mercure": { "publish": ["*"] } }),
        &jsonwebtoken::EncodingKey::from_secret(MERCURE_KEY),
    )
    .expect("sign");
    for id in ["book-1", "book-2", "book-3"] {
        let res = awc::Client::new()
            .post(server_a.url("/.well-known/mercure"))
            .bearer_auth(&token)
            .send_form(&[
                ("topic", "books/1"),
                ("id", id),
                ("data", id),
                ("retry", "900"),
            ])
            .await
            .expect("publish");
        assert_eq!(res.status().as_u16(), 200);
    }
    let ids = |events: Vec<Event>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let live = on_b.take(3).await;
    assert_eq!(live[0].retry, Some(Duration::from_millis(900)));
    assert_eq!(ids(live), ["book-1", "book-2", "book-3"]);
    eventually("read back on a", || a.stats().published >= 3).await;
    for server in [&server_a, &server_b] {
        let (mut resumed, _) = SseClient::open(&server.url(hub), Some("book-1")).await;
        assert_eq!(ids(resumed.take(2).await), ["book-2", "book-3"]);
    }
}

/// A client that connected while the stream was empty has that stream's first id, which
/// names no entry. Resuming with it after entries were trimmed is a reset, never what is
/// left delivered as if it were everything.
async fn resuming_from_an_empty_streams_id_after_trimming_gives_a_reset<E: Engine>() {
    let mut engine = E::new("empty").await;
    let (a, _server_a) = instance(engine.builder()).await;
    let empty = a.last_event_id().to_string();
    for round in 0..3 {
        for i in 0..10 {
            a.publish("e", &(round * 10 + i)).unwrap();
        }
        eventually("a's outbox sent", || a.stats().engine.outbox == 0).await;
    }
    engine.trim(1).await;
    // An instance that has none of it locally: the store answers.
    let (_b, server_b) = instance(engine.builder()).await;
    let mut resumed = SseClient::connect(&server_b.url(PATH), Some(&empty)).await;
    assert_eq!(resumed.next().await.event, RESET_EVENT);

    // Nothing trimmed since the empty stream's id: every event, no reset.
    let mut fresh = E::new("empty-kept").await;
    let (c, _server_c) = instance(fresh.builder()).await;
    let empty = c.last_event_id().to_string();
    for i in 0..3 {
        c.publish("e", &i).unwrap();
    }
    eventually("c's outbox sent", || c.stats().engine.outbox == 0).await;
    let (_d, server_d) = instance(fresh.builder()).await;
    let mut all = SseClient::connect(&server_d.url(PATH), Some(&empty)).await;
    let data: Vec<String> = all.take(3).await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["0", "1", "2"]);
}

/// Mercure's `earliest` on an instance started after the events were published (nothing in
/// its own history) replays what the engine holds; after trimming, what is left, without a
/// reset (nothing older was asked for).
async fn earliest_replays_what_the_engine_holds_to_an_instance_that_did_not_see_it<E: Engine>() {
    let mut engine = E::new("earliest").await;
    let (a, _server_a) = hub_instance(engine.builder()).await;
    for n in 0..5 {
        let event = sse_core::Event::new("e")
            .text(n.to_string())
            .topic("books/1");
        a.publish_event(event).expect("publish");
        // One store entry each (engines batch what is queued at once): trimming keeps whole
        // entries.
        eventually("a's outbox sent", || a.stats().engine.outbox == 0).await;
    }
    let (_b, server_b) = hub_instance(engine.builder()).await;
    let hub = server_b.url("/.well-known/mercure?topic=books/{id}");
    let data = |events: Vec<Event>| events.into_iter().map(|e| e.data).collect::<Vec<_>>();
    let (mut from_start, _) = SseClient::open(&hub, Some("earliest")).await;
    assert_eq!(data(from_start.take(5).await), ["0", "1", "2", "3", "4"]);

    engine.trim(2).await;
    a.publish_event(sse_core::Event::new("e").text("5").topic("books/1"))
        .expect("publish");
    // Live; and B has read it, so the next replay reaches it.
    assert_eq!(from_start.next().await.data, "5");
    let (mut after_trim, _) = SseClient::open(&hub, Some("earliest")).await;
    assert_eq!(data(after_trim.take(3).await), ["3", "4", "5"]);
}

macro_rules! suite {
    ($module:ident, $engine:ty $(, $ignore:literal)?) => {
        mod $module {
            use super::*;

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn two_instances_deliver_the_same_events_with_the_same_ids_in_order() {
                super::two_instances_deliver_the_same_events_with_the_same_ids_in_order::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn a_client_resumes_on_the_other_instance() {
                super::a_client_resumes_on_the_other_instance::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn a_client_resuming_into_an_instance_not_yet_linked_gets_what_it_missed() {
                super::a_client_resuming_into_an_instance_not_yet_linked_gets_what_it_missed::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn an_engine_stopped_for_two_seconds_under_steady_publishing_loses_nothing() {
                super::an_engine_stopped_for_two_seconds_under_steady_publishing_loses_nothing::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn a_restarted_empty_engine_gives_resets() {
                super::a_restarted_empty_engine_gives_resets::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn trimming_past_a_reader_gives_a_reset_never_a_silent_gap() {
                super::trimming_past_a_reader_gives_a_reset_never_a_silent_gap::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn trimming_between_two_replay_pages_gives_a_reset_never_a_silent_gap() {
                super::trimming_between_two_replay_pages_gives_a_reset_never_a_silent_gap::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn the_outbox_bound_drops_the_oldest_counted() {
                super::the_outbox_bound_drops_the_oldest_counted::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn a_publisher_id_travels_with_the_entry_and_resumes_on_the_other_instance() {
                super::a_publisher_id_travels_with_the_entry_and_resumes_on_the_other_instance::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn resuming_from_an_empty_streams_id_after_trimming_gives_a_reset() {
                super::resuming_from_an_empty_streams_id_after_trimming_gives_a_reset::<$engine>().await;
            }

            #[actix_web::test]
            $(#[ignore = $ignore])?
            async fn earliest_replays_what_the_engine_holds_to_an_instance_that_did_not_see_it() {
                super::earliest_replays_what_the_engine_holds_to_an_instance_that_did_not_see_it::<$engine>().await;
            }
        }
    };
}

suite!(memory, engine::Memory);
suite!(redis, engine::Redis, "needs redis-server");
suite!(nats, engine::Nats, "needs nats-server");

/// The stream sse-core makes on NATS keeps about `history_bytes`, not only `history`
/// messages: a client resuming from before what it keeps gets a reset.
#[actix_web::test]
#[ignore = "needs nats-server"]
async fn a_nats_stream_keeps_about_history_bytes() {
    let mut engine = engine::Nats::new("bytes").await;
    let (a, server_a) = instance(engine.builder().history_bytes(1 << 20)).await;
    let mut live = SseClient::connect(&server_a.url(PATH), None).await;
    eventually("subscribed", || a.stats().subscribers == 1).await;
    let pad = "x".repeat(1024);
    a.publish("e", &json!({ "n": 0, "pad": pad })).unwrap();
    let first = live.next().await.id;
    // 3 MiB in all, in messages of at most 512 KiB.
    for n in 1..3000 {
        a.publish("e", &json!({ "n": n, "pad": pad })).unwrap();
    }
    eventually("a's outbox sent", || a.stats().engine.outbox == 0).await;

    // B keeps 10 locally: a resume from the first event is asked of the stream.
    let (b, server_b) = instance(engine.builder().history(10)).await;
    eventually("B read every message", || {
        b.last_event_id().to_string() == a.last_event_id().to_string()
    })
    .await;
    let mut resumed = SseClient::connect(&server_b.url(PATH), Some(&first)).await;
    let reset = resumed.next().await;
    assert_eq!(
        reset.event,
        RESET_EVENT,
        "{:?}",
        &reset.data[..reset.data.len().min(80)]
    );
    assert!(
        reset.data.contains("older than the server's history"),
        "{}",
        reset.data
    );
}

/// A NATS client that lost its server and connected again is counted, as on Redis
/// (`stats().engine.reconnects`, and the `sse_engine_reconnects_total` metric through the same
/// hook), even when nothing was published during the outage.
#[actix_web::test]
#[ignore = "needs nats-server"]
async fn a_nats_engine_reports_its_reconnects() {
    let mut engine = engine::Nats::new("reconnects").await;
    let events = engine.builder().keep_alive(None).build();
    connected(&events).await;
    assert_eq!(events.stats().engine.reconnects, 0);
    engine.stop().await;
    engine.start().await;
    eventually("the reconnect counted", || {
        events.stats().engine.reconnects == 1
    })
    .await;
    // Working again, and the count stays: one outage, one reconnect.
    let server = serve(&events, PATH);
    let mut client = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    events.publish("e", &1).unwrap();
    assert_eq!(client.next().await.data, "1");
    assert_eq!(events.stats().engine.reconnects, 1);
}
