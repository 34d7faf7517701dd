//! Snapshot-consistent subscribing: a snapshot stamped by `snapshot_id_middleware`, then a
//! stream from that id, gives exactly the server's state, with events published between the
//! two, and with writes racing the snapshot.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use common::{eventually, SseClient, WAIT};
use sse_core::{http::SNAPSHOT_ID_HEADER, Broadcaster};

const PATH: &str = "/events";

/// A set of numbers; adding one publishes `added` after it is stored, like `#[emit_event]`.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<BTreeSet<u64>>>);

impl Store {
    fn add(&self, events: &Broadcaster, n: u64) {
        self.0.lock().expect("store").insert(n);
        events.publish("added", &n).expect("publish");
    }
    fn all(&self) -> BTreeSet<u64> {
        self.0.lock().expect("store").clone()
    }
}

struct Server {
    base: String,
    handle: actix_web::dev::ServerHandle,
}

/// `GET /items` reads the store after `read_delay`, to let writes race the snapshot.
fn serve(events: &Broadcaster, store: &Store, read_delay: Duration) -> Server {
    let (events, store) = (events.clone(), store.clone());
    let server = HttpServer::new(move || {
        let store = store.clone();
        App::new()
            .wrap(events.snapshot_id_middleware())
            .configure(events.service(PATH))
            .route(
                "/items",
                web::get().to(move || {
                    let store = store.clone();
                    async move {
                        tokio::time::sleep(read_delay).await;
                        HttpResponse::Ok().json(store.all())
                    }
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Server { base, handle }
}

/// The snapshot and its id.
async fn snapshot(base: &str) -> (BTreeSet<u64>, String) {
    let client = awc::Client::builder().timeout(WAIT).finish();
    let mut resp = (client.get(format!("{base}/items")).send())
        .await
        .expect("GET /items");
    let id = resp
        .headers()
        .get(SNAPSHOT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("the response carries the snapshot id")
        .to_owned();
    let items = resp.json().await.expect("items");
    (items, id)
}

/// Applies `added` events from `stream` to `state` until it holds all of `want` (each wait
/// bounded by [`WAIT`]). Events of writes made while the handler ran may already be in the
/// snapshot (the id is taken before it): applying them again changes nothing.
async fn catch_up(stream: &mut SseClient, state: &mut BTreeSet<u64>, want: &BTreeSet<u64>) {
    while !want.is_subset(state) {
        let event = stream.next().await;
        assert_ne!(
            event.event, "sse-reset",
            "the snapshot id was not resumable"
        );
        if event.event != "added" {
            continue;
        }
        state.insert(event.data.parse().expect("a number"));
    }
}

#[actix_web::test]
async fn events_published_between_snapshot_and_subscription_arrive_once() {
    let (events, store) = (Broadcaster::new(), Store::default());
    let server = serve(&events, &store, Duration::ZERO);
    for n in 1..=3 {
        store.add(&events, n);
    }
    let (mut state, id) = snapshot(&server.base).await;
    assert_eq!(state, BTreeSet::from([1, 2, 3]));
    assert_eq!(id, events.last_event_id().to_string());

    // Published after the snapshot was read, before the page subscribes.
    store.add(&events, 4);
    store.add(&events, 5);
    let mut stream = SseClient::connect(&server.base_url(PATH), Some(&id)).await;
    assert_eq!(stream.status, 200);
    eventually("subscribed", || events.stats().subscribers == 1).await;
    store.add(&events, 6);

    let mut got = Vec::new();
    while got.len() < 3 {
        let event = stream.next().await;
        if event.event == "added" {
            got.push(event.data.parse::<u64>().expect("a number"));
        }
    }
    assert_eq!(
        got,
        [4, 5, 6],
        "exactly the events after the snapshot, in order"
    );
    state.extend(got);
    assert_eq!(state, store.all());
    stream.assert_quiet(Duration::from_millis(200)).await;
    server.handle.stop(false).await;
}

#[actix_web::test]
async fn writes_racing_the_snapshot_are_never_lost() {
    let (events, store) = (Broadcaster::new(), Store::default());
    // The handler reads 20 ms after the id was taken: writes land in between.
    let server = serve(&events, &store, Duration::from_millis(20));
    let writer = {
        let (events, store) = (events.clone(), store.clone());
        actix_web::rt::spawn(async move {
            for n in 0..300 {
                store.add(&events, n);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Several pages load and subscribe while the writes go on.
    for _ in 0..5 {
        let (mut state, id) = snapshot(&server.base).await;
        let mut stream = SseClient::connect(&server.base_url(PATH), Some(&id)).await;
        assert_eq!(stream.status, 200);
        let want = store.all();
        catch_up(&mut stream, &mut state, &want).await;
    }
    tokio::time::timeout(WAIT, writer)
        .await
        .expect("writer done")
        .expect("writer");
    server.handle.stop(false).await;
}

#[actix_web::test]
async fn every_response_is_stamped_even_errors() {
    let (events, store) = (Broadcaster::new(), Store::default());
    let server = serve(&events, &store, Duration::ZERO);
    let id = events.publish("added", &1).expect("publish").to_string();
    let client = awc::Client::builder().timeout(WAIT).finish();
    let resp = (client.get(format!("{}/nowhere", server.base)).send())
        .await
        .expect("GET");
    assert_eq!(resp.status(), 404);
    let stamped = resp.headers().get(SNAPSHOT_ID_HEADER);
    assert_eq!(stamped.and_then(|v| v.to_str().ok()), Some(id.as_str()));
    server.handle.stop(false).await;
}

impl Server {
    fn base_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
