//! Shutdown in the right order: a write in flight when the server is told to stop still
//! publishes its event, and it reaches the subscribers of the other instances.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use common::{eventually, start, SseClient, WAIT};
use sse_core::testing::MemoryStore;
use sse_core::{emit_event, Broadcaster};
use tokio::sync::Notify;

#[derive(serde::Serialize)]
struct Saved {
    id: u32,
}

/// Lets the test hold the handler between its change and its answer.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[emit_event("saved")]
async fn save(gate: web::Data<Gate>) -> web::Json<Saved> {
    gate.entered.notify_one();
    gate.release.notified().await;
    web::Json(Saved { id: 7 })
}

#[actix_rt::test]
async fn a_write_in_flight_at_shutdown_still_reaches_the_other_instances() {
    let store = MemoryStore::new(1000);
    let a = Broadcaster::builder().memory_log(&store).build();
    let b = Broadcaster::builder().memory_log(&store).build();
    let gate = Gate::default();
    let server_a = {
        let (a, gate) = (a.clone(), gate.clone());
        start(1, move |cfg| {
            a.service("/events")(cfg);
            cfg.app_data(web::Data::new(gate.clone()))
                .route("/save", web::put().to(save));
        })
    };
    let server_b = common::serve(&b, "/events");
    let mut on_b = SseClient::connect(&server_b.url("/events"), None).await;
    let mut on_a = SseClient::connect(&server_a.url("/events"), None).await;
    eventually("both subscribed", || {
        a.stats().subscribers == 1 && b.stats().subscribers == 1
    })
    .await;

    // The write is in flight (its change made, its answer not yet) when A is told to stop.
    let url = server_a.url("/save");
    let write = actix_web::rt::spawn(async move { awc::Client::new().put(url).send().await });
    tokio::time::timeout(WAIT, gate.entered.notified())
        .await
        .expect("the handler started");
    let stopping = {
        let (a, handle) = (a.clone(), server_a.handle.clone());
        actix_web::rt::spawn(async move { a.stop_server(&handle, true).await })
    };
    // A's streams end at once: its clients reconnect elsewhere while A drains.
    on_a.assert_ends().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.release.notify_one();

    let answer = write.await.expect("the request task").expect("an answer");
    assert_eq!(answer.status(), 200);
    let event = on_b.next().await;
    assert_eq!(event.event, "saved");
    assert_eq!(event.data, r#"{"id":7}"#);
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("A stopped within the wait")
        .expect("the stop task");
    assert_eq!(a.stats().emit_failures, 0, "{:?}", a.stats());
    server_b.handle.stop(false).await;
}
