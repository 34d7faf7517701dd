//! End-to-end tests of the stream endpoint against real servers on loopback.

mod common;

use std::time::{Duration, Instant};

use actix_web::middleware::Compress;
use actix_web::{web, App, HttpResponse, HttpServer};
use common::{eventually, serve, start, RawClient, SseClient};
use serde_json::json;
use sse_core::{emit_event, Broadcaster, RESET_EVENT};

const PATH: &str = "/events";

#[actix_web::test]
async fn named_events_arrive_in_order_with_ids_and_headers() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let mut client = SseClient::connect(&server.url(PATH), None).await;
    assert_eq!(client.status, 200);
    let h = |name: &str| {
        client
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(
        h("cache-control").as_deref(),
        Some("no-cache, no-transform")
    );
    assert_eq!(h("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(h("content-encoding").as_deref(), Some("identity"));

    eventually("subscribed", || events.stats().subscribers == 1).await;
    let ids: Vec<_> = (1..=3)
        .map(|i| events.publish("user_updated", &json!({"id": i})).unwrap())
        .collect();
    let got = client.take(3).await;
    for (i, (event, id)) in got.iter().zip(&ids).enumerate() {
        assert_eq!(event.event, "user_updated");
        assert_eq!(event.id, id.to_string());
        assert_eq!(event.data, format!(r#"{{"id":{}}}"#, i + 1));
    }
    assert!(ids.windows(2).all(|w| w[0].seq() < w[1].seq()));
}

#[actix_web::test]
async fn last_event_id_replays_exactly_the_missed_events() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let mut first = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    events.publish("e", &1).unwrap();
    events.publish("e", &2).unwrap();
    let seen = first.take(2).await;
    drop(first);

    // Missed while disconnected.
    for i in 3..=5 {
        events.publish("e", &i).unwrap();
    }
    let last = seen[1].id.clone();
    let by_header = SseClient::connect(&server.url(PATH), Some(&last)).await;
    let by_query =
        SseClient::connect(&server.url(&format!("{PATH}?lastEventId={last}")), None).await;
    let mut clients = [by_header, by_query];
    for client in &mut clients {
        let replayed = client.take(3).await;
        let data: Vec<_> = replayed.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["3", "4", "5"]);
        client.assert_quiet(Duration::from_millis(200)).await;
    }
    // Then live, with no duplicate.
    let id = events.publish("e", &6).unwrap();
    for client in &mut clients {
        let live = client.next().await;
        assert_eq!(
            (live.data.as_str(), live.id.as_str()),
            ("6", id.to_string().as_str())
        );
    }
    assert_eq!(events.stats().resumed, 2);
}

#[actix_web::test]
async fn header_wins_over_query_parameter() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let ids: Vec<_> = (1..=4).map(|i| events.publish("e", &i).unwrap()).collect();
    let url = server.url(&format!("{PATH}?lastEventId={}", ids[0]));
    let mut client = SseClient::connect(&url, Some(&ids[2].to_string())).await;
    assert_eq!(client.next().await.data, "4");
}

#[actix_web::test]
async fn unusable_last_event_id_gets_a_reset_never_an_error() {
    let events = Broadcaster::builder().history(2).build();
    let server = serve(&events, PATH);
    for i in 0..5 {
        events.publish("e", &i).unwrap();
    }
    let other_server = Broadcaster::new();
    let stale = other_server.publish("e", &0).unwrap().to_string();
    let too_old = events.last_event_id().to_string().replace("-5", "-1");
    type Build = Box<dyn Fn(awc::ClientRequest) -> awc::ClientRequest>;
    let cases: Vec<(&str, Build)> = vec![
        (
            "garbage",
            Box::new(|r| r.insert_header(("Last-Event-ID", "not-an-id"))),
        ),
        (
            "other epoch",
            Box::new(move |r| r.insert_header(("Last-Event-ID", stale.as_str()))),
        ),
        (
            "too old",
            Box::new(move |r| r.insert_header(("Last-Event-ID", too_old.as_str()))),
        ),
        (
            "non-UTF-8 header",
            Box::new(|r| {
                r.insert_header((
                    "Last-Event-ID",
                    actix_web::http::header::HeaderValue::from_bytes(b"\xff\xfe-1")
                        .expect("obs-text is a valid header value"),
                ))
            }),
        ),
    ];
    for (what, build) in cases {
        let mut client = SseClient::connect_with(&server.url(PATH), build).await;
        assert_eq!(client.status, 200, "{what}");
        let reset = client.next().await;
        assert_eq!(reset.event, RESET_EVENT, "{what}");
        assert_eq!(reset.id, events.last_event_id().to_string(), "{what}");
        assert!(reset.data.contains("reason"), "{what}: {}", reset.data);
        events.publish("e", &"live").unwrap();
        assert_eq!(client.next().await.data, "\"live\"", "{what}");
    }
    // A query string that does not parse is treated the same way.
    let mut client = SseClient::connect(
        &server.url(&format!("{PATH}?lastEventId=%ZZ&lastEventId=x")),
        None,
    )
    .await;
    assert_eq!(client.status, 200);
    assert_eq!(client.next().await.event, RESET_EVENT);
}

#[actix_web::test]
async fn stalled_client_does_not_delay_a_reading_client() {
    let events = Broadcaster::builder()
        .history(4096)
        .keep_alive(None)
        .build();
    let server = serve(&events, PATH);
    // Never reads, with a small receive buffer: the server's writes to it block early.
    let stalled = RawClient::connect(server.addr, PATH, Some(4096)).await;
    let mut reader = SseClient::connect(&server.url(PATH), None).await;
    eventually("both subscribed", || events.stats().subscribers == 2).await;

    let payload = "x".repeat(4096);
    let total = 2000u64;
    let started = Instant::now();
    let reading = async {
        let mut next = 1u64;
        while next <= total {
            let e = reader.next().await;
            assert_ne!(e.event, RESET_EVENT, "reader was reset at {next}");
            let id: sse_core::EventId = e.id.parse().expect("id");
            assert_eq!(id.seq(), next, "events out of order or lost");
            next += 1;
        }
    };
    let publishing = async {
        for chunk in 0..(total / 100) {
            for i in 0..100 {
                events
                    .publish("blob", &(chunk * 100 + i, &payload))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::join!(reading, publishing);
    // 8 MB through the reader; bounded generously for a busy 2-core machine.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        events.stats().subscribers,
        2,
        "the stalled client is still connected"
    );
    drop(stalled);
}

#[actix_web::test]
async fn thousand_clients_connect_and_disconnect() {
    let events = Broadcaster::builder()
        .keep_alive(Duration::from_millis(200))
        .build();
    let server = serve(&events, PATH);
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(RawClient::connect(server.addr, PATH, None).await);
    }
    eventually("1000 subscribers", || events.stats().subscribers == 1000).await;
    drop(clients);
    eventually("all subscriptions released", || {
        events.stats().subscribers == 0
    })
    .await;
    assert_eq!(events.stats().disconnects, 1000);
}

#[actix_web::test]
async fn shutdown_with_open_streams_is_prompt() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(RawClient::connect(server.addr, PATH, None).await);
    }
    eventually("1000 subscribers", || events.stats().subscribers == 1000).await;
    let started = Instant::now();
    // actix's default shutdown_timeout is 30 s; without ending the streams it waits for it.
    events.stop_server(&server.handle, true).await;
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("server exits")
        .expect("server task")
        .expect("server result");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    for client in clients.iter_mut().take(10) {
        assert!(client.closed_by_server().await);
    }
}

/// The control for the test above: the same server stopped without ending the streams waits
/// for actix's whole shutdown timeout.
#[actix_web::test]
async fn without_ending_streams_shutdown_waits_for_the_timeout() {
    let events = Broadcaster::new();
    let e = events.clone();
    let server = HttpServer::new(move || App::new().configure(e.service(PATH)))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let task = actix_web::rt::spawn(server);
    let _client = RawClient::connect(addr, PATH, None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    let started = Instant::now();
    handle.stop(true).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn compress_middleware_leaves_the_stream_alone() {
    let events = Broadcaster::new();
    let e = events.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Compress::default())
            .configure(e.service(PATH))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    let mut client = SseClient::connect_with(&format!("http://{addr}{PATH}"), |r| {
        r.insert_header(("Accept-Encoding", "gzip"))
    })
    .await;
    assert_eq!(
        client
            .headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("identity")
    );
    eventually("subscribed", || events.stats().subscribers == 1).await;
    events.publish("e", &"plain").unwrap();
    // Arrives at once, unbuffered and readable.
    let e = tokio::time::timeout(Duration::from_secs(2), client.next())
        .await
        .expect("prompt");
    assert_eq!(e.data, "\"plain\"");
}

/// A gzip subscriber (behind actix's `Compress` middleware, which must neither buffer nor
/// encode it again) reads each event, decoded, before the next is published; an identity
/// subscriber of the same broadcaster gets the same events as before; at shutdown the gzip
/// body ends with a trailer whose CRC and length check out.
#[actix_web::test]
async fn a_gzip_subscriber_decodes_each_event_as_it_is_published() {
    use std::io::Write;

    use futures_util::StreamExt;

    let events = Broadcaster::builder().compress(true).build();
    let e = events.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Compress::default())
            .configure(e.service(PATH))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let url = format!("http://{}{PATH}", server.addrs()[0]);
    actix_web::rt::spawn(server.run());

    let client = awc::Client::builder().timeout(common::WAIT).finish();
    let mut gzip = client
        .get(&url)
        .insert_header(("Accept-Encoding", "br;q=0.9, gzip;q=0.8, identity;q=0.5"))
        .send()
        .await
        .expect("gzip stream");
    let header = |name: &str| gzip.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("content-encoding"), Some("gzip"));
    assert_eq!(header("vary"), Some("accept-encoding"));
    let mut plain = SseClient::connect_with(&url, |r| {
        r.insert_header(("Accept-Encoding", "gzip;q=0, identity"))
    })
    .await;
    let encoding = plain.headers.get("content-encoding");
    assert_eq!(encoding.and_then(|v| v.to_str().ok()), Some("identity"));
    eventually("subscribed", || events.stats().subscribers == 2).await;

    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let pad = "a row of some JSON, ".repeat(200);
    let (mut wire, mut decoded) = (0, 0);
    for i in 0..5 {
        let id = events
            .publish("row", &json!({ "i": i, "pad": pad }))
            .unwrap();
        let end = format!("id: {id}\nevent: row\n");
        // Decoded from what has arrived so far, before the next event exists.
        tokio::time::timeout(common::WAIT, async {
            loop {
                let text = String::from_utf8_lossy(decoder.get_ref()).into_owned();
                if text
                    .split(&end)
                    .nth(1)
                    .is_some_and(|rest| rest.contains("\n\n"))
                {
                    break;
                }
                let chunk = gzip.next().await.expect("open").expect("readable");
                wire += chunk.len();
                decoder.write_all(&chunk).unwrap();
                decoder.flush().unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("event {i} not decodable as it arrived"));
        decoded = decoder.get_ref().len();
        let event = plain.next().await;
        assert_eq!(event.id, id.to_string());
        assert_eq!(event.data, json!({ "i": i, "pad": pad }).to_string());
    }
    assert!(wire * 3 < decoded, "{wire} bytes on the wire for {decoded}");

    events.shutdown();
    tokio::time::timeout(common::WAIT, async {
        while let Some(chunk) = gzip.next().await {
            decoder.write_all(&chunk.expect("readable")).unwrap();
        }
    })
    .await
    .expect("the gzip stream ends at shutdown");
    let body = decoder
        .finish()
        .expect("a complete gzip body, CRC and length right");
    assert!(String::from_utf8_lossy(&body).ends_with("\n\n"));
}

#[derive(serde::Serialize)]
struct Note {
    n: u32,
}

#[emit_event("note_added")]
async fn add_note(n: web::Path<u32>) -> web::Json<Note> {
    web::Json(Note { n: n.into_inner() })
}

#[actix_web::test]
async fn every_worker_sees_every_event() {
    let events = Broadcaster::new();
    let e = events.clone();
    let server = start(3, move |cfg| {
        e.service(PATH)(cfg);
        cfg.route("/notes/{n}", web::post().to(add_note));
    });
    let mut clients = Vec::new();
    for _ in 0..9 {
        clients.push(SseClient::connect(&server.url(PATH), None).await);
    }
    eventually("9 subscribers", || events.stats().subscribers == 9).await;
    let http = awc::Client::new();
    for n in 1..=6 {
        // Separate connections, so the requests land on different workers.
        let resp = http
            .post(server.url(&format!("/notes/{n}")))
            .insert_header(("Connection", "close"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    for client in &mut clients {
        let got: Vec<_> = client.take(6).await.into_iter().map(|e| e.data).collect();
        let want: Vec<_> = (1..=6).map(|n| format!(r#"{{"n":{n}}}"#)).collect();
        assert_eq!(got, want);
    }
}

#[actix_web::test]
async fn keep_alive_comments_are_sent_when_idle() {
    let events = Broadcaster::builder()
        .keep_alive(Duration::from_millis(100))
        .retry(Duration::from_millis(1500))
        .build();
    let server = serve(&events, PATH);
    let mut raw = RawClient::connect(server.addr, PATH, None).await;
    let seen = raw.read_until(": keep-alive\n\n").await;
    assert!(seen.contains("retry: 1500\n"), "{seen:?}");
}

#[actix_web::test]
async fn a_missing_broadcaster_is_explained() {
    async fn wants(events: Broadcaster) -> HttpResponse {
        HttpResponse::Ok().body(events.stats().published.to_string())
    }
    let server = start(1, |cfg| {
        cfg.route("/x", web::get().to(wants));
    });
    let mut resp = awc::Client::new()
        .get(server.url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let body = resp.body().await.unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(".configure(events.service("), "{body}");
}

#[actix_web::test]
async fn shut_down_broadcaster_refuses_new_streams() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    events.shutdown();
    let resp = awc::Client::new()
        .get(server.url(PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn envelope_format_serves_onmessage_clients() {
    let events = Broadcaster::builder()
        .wire_format(sse_core::wire::WireFormat::Envelope)
        .build();
    let server = serve(&events, PATH);
    let mut client = SseClient::connect(&server.url(PATH), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    events
        .publish("user_updated", &json!({"user_id": 7}))
        .unwrap();
    let e = client.next().await;
    assert_eq!(e.event, "message", "unnamed, so onmessage sees it");
    let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(
        data,
        json!({"event": "user_updated", "data": {"user_id": 7}})
    );

    let mut client = SseClient::connect(&server.url(PATH), Some("bogus")).await;
    let reset: serde_json::Value = serde_json::from_str(&client.next().await.data).unwrap();
    assert_eq!(reset["event"], RESET_EVENT);
}
