//! `#[emit_event]` at run time: what is published, and that responses are untouched.

mod common;

use actix_web::http::StatusCode;
use actix_web::{body, post, test, web, App, Either, HttpRequest, HttpResponse, Responder};
use common::{eventually, start, SseClient};
use serde::Serialize;
use sse_core::testing::capture;
use sse_core::{emit_event, Broadcaster, EventPayload, PayloadWriter};

#[derive(Clone, Debug, Serialize)]
struct User {
    id: u32,
    name: String,
}

fn ada() -> User {
    User {
        id: 1,
        name: "Ada \"the first\"\nLovelace".into(),
    }
}

#[emit_event("user_created")]
async fn create(fail: web::Query<Fail>) -> Result<web::Json<User>, actix_web::Error> {
    if fail.fail {
        return Err(actix_web::error::ErrorConflict("taken"));
    }
    Ok(web::Json(ada()))
}

async fn create_plain(fail: web::Query<Fail>) -> Result<web::Json<User>, actix_web::Error> {
    if fail.fail {
        return Err(actix_web::error::ErrorConflict("taken"));
    }
    Ok(web::Json(ada()))
}

#[derive(serde::Deserialize)]
struct Fail {
    #[serde(default)]
    fail: bool,
}

#[actix_web::test]
async fn ok_publishes_one_event_carrying_the_response_json() {
    let events = Broadcaster::new();
    let e = events.clone();
    let server = start(1, move |cfg| {
        e.service("/events")(cfg);
        cfg.route("/users", web::post().to(create));
    });
    let mut client = SseClient::connect(&server.url("/events"), None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;

    let http = awc::Client::new();
    let mut resp = http
        .post(server.url("/users?fail=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let _ = resp.body().await;
    let mut resp = http.post(server.url("/users")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.body().await.unwrap();

    let event = client.next().await;
    assert_eq!(event.event, "user_created");
    assert_eq!(
        event.data.as_bytes(),
        &body[..],
        "event data is the response JSON"
    );
    // The error published nothing: exactly one event.
    client
        .assert_quiet(std::time::Duration::from_millis(200))
        .await;
    assert_eq!(events.stats().published, 1);
}

#[actix_web::test]
async fn the_response_is_byte_for_byte_the_same_as_without_the_annotation() {
    let events = Broadcaster::new();
    let app = test::init_service(
        App::new()
            .configure(events.service("/events"))
            .route("/annotated", web::post().to(create))
            .route("/plain", web::post().to(create_plain)),
    )
    .await;
    for query in ["", "?fail=true"] {
        let mut seen = Vec::new();
        for path in ["/annotated", "/plain"] {
            let req = test::TestRequest::post()
                .uri(&format!("{path}{query}"))
                .to_request();
            let resp = test::call_service(&app, req).await;
            let status = resp.status();
            let mut headers: Vec<_> = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            headers.sort();
            let body = body::to_bytes(resp.into_body()).await.unwrap();
            seen.push((status, headers, body));
        }
        assert_eq!(seen[0], seen[1], "query {query:?}");
    }
    assert_eq!(events.stats().published, 1);
}

#[emit_event("first")]
#[emit_event("second")]
#[emit_event("third")]
async fn three_events() -> web::Json<u8> {
    web::Json(3)
}

#[actix_web::test]
async fn several_attributes_publish_in_the_order_written() {
    let (_, events) = capture(three_events()).await;
    let names: Vec<_> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"]);
    assert!(events.iter().all(|e| e.payload == 3));
}

#[post("/route-outer")]
#[emit_event("route_outer")]
async fn route_outer() -> web::Json<&'static str> {
    web::Json("outer")
}

#[emit_event("route_inner")]
#[post("/route-inner")]
async fn route_inner() -> web::Json<&'static str> {
    web::Json("inner")
}

#[actix_web::test]
async fn composes_with_route_macros_in_both_orders_and_with_web_routes() {
    let events = Broadcaster::new();
    let app = test::init_service(
        App::new()
            .configure(events.service("/events"))
            .service(route_outer)
            .service(route_inner)
            .route("/routed", web::post().to(three_events)),
    )
    .await;
    for path in ["/route-outer", "/route-inner", "/routed"] {
        let resp = test::call_service(&app, test::TestRequest::post().uri(path).to_request()).await;
        assert!(resp.status().is_success(), "{path}");
    }
    // Through actix_web::test as well: the capture helper sees the same events.
    let (resp, captured) = capture(test::call_service(
        &app,
        test::TestRequest::post().uri("/route-inner").to_request(),
    ))
    .await;
    assert!(resp.status().is_success());
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0].name, "route_inner");
    assert_eq!(captured[0].payload, "inner");
    assert_eq!(captured[0].topics, ["route_inner"]);
    // 1 + 1 + 3 published; the captured call published nothing.
    assert_eq!(events.stats().published, 5);
}

#[emit_event("maybe")]
async fn maybe(n: u8) -> Option<web::Json<u8>> {
    (n > 0).then_some(web::Json(n))
}

#[emit_event("created")]
async fn with_status(status: StatusCode) -> Result<(web::Json<u8>, StatusCode), actix_web::Error> {
    Ok((web::Json(1), status))
}

#[emit_event("either")]
async fn either(left: bool) -> Either<web::Json<u8>, web::Json<String>> {
    if left {
        Either::Left(web::Json(1))
    } else {
        Either::Right(web::Json("right".into()))
    }
}

#[actix_web::test]
async fn only_success_publishes() {
    assert_eq!(capture(maybe(0)).await.1.len(), 0);
    assert_eq!(capture(maybe(2)).await.1[0].payload, 2);
    assert_eq!(capture(with_status(StatusCode::CREATED)).await.1.len(), 1);
    assert_eq!(capture(with_status(StatusCode::ACCEPTED)).await.1.len(), 1);
    assert_eq!(
        capture(with_status(StatusCode::BAD_REQUEST)).await.1.len(),
        0
    );
    assert_eq!(capture(either(true)).await.1[0].payload, 1);
    assert_eq!(capture(either(false)).await.1[0].payload, "right");
}

/// A responder whose event payload cannot be serialized.
struct Unserializable;

impl Responder for Unserializable {
    type Body = body::BoxBody;
    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok().body("done")
    }
}

impl EventPayload for Unserializable {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        // JSON object keys must be strings.
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 1);
        out.serialize(&map);
    }
}

#[emit_event("broken")]
async fn broken() -> Unserializable {
    Unserializable
}

#[actix_web::test]
async fn a_payload_that_fails_to_serialize_keeps_the_response_and_is_counted() {
    let events = Broadcaster::new();
    let app = test::init_service(
        App::new()
            .configure(events.service("/events"))
            .route("/broken", web::post().to(broken)),
    )
    .await;
    let resp =
        test::call_service(&app, test::TestRequest::post().uri("/broken").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body::to_bytes(resp.into_body()).await.unwrap(), "done");
    let stats = events.stats();
    assert_eq!((stats.published, stats.emit_failures), (0, 1));
}

#[actix_web::test]
async fn without_a_broadcaster_the_handler_still_answers() {
    // Called directly, on a thread where no App registered a broadcaster: the event is logged
    // as lost, the handler works as before.
    let out = std::thread::spawn(|| {
        actix_web::rt::System::new().block_on(async { maybe(4).await.map(|j| j.into_inner()) })
    })
    .join()
    .unwrap();
    assert_eq!(out, Some(4));
}

#[actix_web::test]
async fn scope_overrides_the_registered_broadcaster() {
    let registered = Broadcaster::new();
    let _app = test::init_service(App::new().configure(registered.service("/events"))).await;
    let other = Broadcaster::new();
    other.scope(maybe(1)).await;
    maybe(1).await;
    assert_eq!(
        (registered.stats().published, other.stats().published),
        (1, 1)
    );
}

#[emit_event("note_saved", topic = "notes/{id}", to_others)]
#[emit_event("note_saved_private", topic = "owners/{owner}/notes", private)]
async fn save_note() -> web::Json<serde_json::Value> {
    web::Json(serde_json::json!({"id": 7, "owner": 42}))
}

#[emit_event("bad_topic", topic = "notes/{missing}")]
async fn note_without_the_topic_field() -> web::Json<serde_json::Value> {
    web::Json(serde_json::json!({"id": 7}))
}

#[actix_rt::test]
async fn capture_records_privacy_and_to_others_as_publishing_would() {
    let (_, events) = capture(save_note()).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].topics, ["notes/7"]);
    assert!(events[0].to_others && !events[0].private);
    assert_eq!(events[1].topics, ["owners/42/notes"]);
    assert!(events[1].private && !events[1].to_others);
}

#[actix_rt::test]
async fn capture_fails_where_publishing_fails() {
    // Publishing drops an event whose topic cannot be filled; so does the capture.
    let (_, events) = capture(note_without_the_topic_field()).await;
    assert!(events.is_empty(), "{events:?}");
    let events_published = Broadcaster::new();
    events_published.scope(note_without_the_topic_field()).await;
    assert_eq!(events_published.stats().published, 0);
    assert_eq!(events_published.stats().topic_failures, 1);
}
