//! The Mercure hub (feature `mercure`): publish and subscribe by the protocol, tokens from
//! each place, private updates, resuming with publishers' ids, every refusal, discovery, and
//! one stream shared with `#[emit_event]`.

mod common;

use std::time::Duration;

use actix_web::{web, App, HttpResponse};
use common::{eventually, start, SseClient, TestServer};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use sse_core::mercure::{Discovery, JwtKey, Mercure};
use sse_core::{emit_event, Broadcaster};

const PUBLISHER: &[u8] = b"publisher secret, long enough for HS256";
const SUBSCRIBER: &[u8] = b"subscriber secret, long enough for HS256";
const HUB: &str = "/.well-known/mercure";
const QUIET: Duration = Duration::from_millis(300);

fn sign(secret: &[u8], mercure: Value) -> String {
    encode(
        &Header::default(),
        &json!({ "mercure": mercure }),
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

fn publisher(topics: &[&str]) -> String {
    sign(PUBLISHER, json!({ "publish": topics }))
}

fn subscriber(topics: &[&str]) -> String {
    sign(SUBSCRIBER, json!({ "subscribe": topics }))
}

fn hub(anonymous: bool) -> Mercure {
    Mercure::new()
        .publisher_key(JwtKey::hs256(PUBLISHER))
        .subscriber_key(JwtKey::hs256(SUBSCRIBER))
        .anonymous(anonymous)
        .base_iri("https://example.com/")
        .max_update_bytes(4096)
}

#[derive(serde::Serialize)]
struct Book {
    id: u32,
    title: String,
}

#[emit_event("book_updated", topic = "books/{id}")]
async fn update_book(path: web::Path<u32>) -> web::Json<Book> {
    web::Json(Book {
        id: path.into_inner(),
        title: "Dune".to_owned(),
    })
}

/// The stream endpoint at `/events`, the hub, and `PUT /books/{id}` (an `#[emit_event]`
/// handler on the topic `books/{id}`).
fn serve_hub(events: &Broadcaster, hub: Mercure) -> TestServer {
    let events = events.clone();
    start(1, move |cfg| {
        events.service("/events")(cfg);
        events.mercure(hub.clone())(cfg);
        cfg.route("/books/{id}", web::put().to(update_book));
    })
}

/// Posts `form` with `token` (if any); the status and the body.
async fn publish(server: &TestServer, token: Option<&str>, form: &[(&str, &str)]) -> (u16, String) {
    let mut req = awc::Client::new().post(server.url(HUB));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let mut res = req.send_form(&form).await.expect("publish");
    let body = res.body().await.expect("body");
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn url(server: &TestServer, query: &str) -> String {
    server.url(&format!("{HUB}?{query}"))
}

async fn subscribe(server: &TestServer, query: &str, token: Option<&str>) -> SseClient {
    let (client, _) = SseClient::open_as(&url(server, query), None, token).await;
    client
}

#[actix_web::test]
async fn an_update_reaches_a_subscriber_with_its_id_type_and_multiline_data() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let mut raw = subscribe(&server, "topic=raw-topic", None).await;
    let mut iri = subscribe(&server, "topic=https://example.com/books/1", None).await;
    let mut template = subscribe(&server, "topic=https://example.com/books/{id}", None).await;
    eventually("subscribed", || events.stats().subscribers == 3).await;

    let token = publisher(&["*"]);
    let (status, id) = publish(
        &server,
        Some(&token),
        &[
            ("topic", "https://example.com/books/1"),
            ("data", "line 1\nline 2"),
            ("id", "book-1"),
            ("type", "book"),
            ("retry", "2500"),
        ],
    )
    .await;
    assert_eq!((status, id.as_str()), (200, "book-1"));
    for client in [&mut iri, &mut template] {
        let event = client.next().await;
        assert_eq!(event.id, "book-1");
        assert_eq!(event.event, "book");
        assert_eq!(event.data, "line 1\nline 2");
        assert_eq!(event.retry, Some(Duration::from_millis(2500)));
    }
    let (status, _) = publish(
        &server,
        Some(&token),
        &[("topic", "raw-topic"), ("data", "raw")],
    )
    .await;
    assert_eq!(status, 200);
    let event = raw.next().await;
    assert_eq!(
        (event.event.as_str(), event.data.as_str()),
        ("message", "raw")
    );
    iri.assert_quiet(QUIET).await;
    template.assert_quiet(QUIET).await;
}

#[actix_web::test]
async fn an_update_without_an_id_gets_a_urn_uuid_which_the_frame_carries() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let mut client = subscribe(&server, "topic=a", None).await;
    eventually("subscribed", || events.stats().subscribers == 1).await;
    let (status, id) = publish(
        &server,
        Some(&publisher(&["a"])),
        &[("topic", "a"), ("data", "x")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(id.starts_with("urn:uuid:") && id.len() == 45, "{id}");
    assert_eq!(client.next().await.id, id);
}

#[actix_web::test]
async fn the_publish_answer_is_text_plain() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let res = awc::Client::new()
        .post(server.url(HUB))
        .bearer_auth(publisher(&["*"]))
        .send_form(&[("topic", "a"), ("id", "x1")])
        .await
        .expect("publish");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("text/plain; charset=utf-8"));
}

#[actix_web::test]
async fn several_topics_and_selectors_match_once_and_others_not_at_all() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let mut both = subscribe(
        &server,
        "topic=https://example.com/a&topic=https://other.org/b/{x}",
        None,
    )
    .await;
    let mut none = subscribe(
        &server,
        "topic=https://example.com/c&topic=https://other.org/b",
        None,
    )
    .await;
    eventually("subscribed", || events.stats().subscribers == 2).await;
    let token = publisher(&["*"]);
    let form = [
        ("topic", "https://other.org/b/1"),
        ("topic", "https://example.com/a"),
        ("id", "u1"),
        ("data", "d"),
    ];
    assert_eq!(publish(&server, Some(&token), &form).await.0, 200);
    assert_eq!(both.next().await.id, "u1");
    both.assert_quiet(QUIET).await;
    none.assert_quiet(QUIET).await;
}

#[actix_web::test]
async fn private_updates_reach_only_subscribers_whose_claim_allows_them() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let query = "topic=https://example.com/books/{id}";
    let mut anonymous = subscribe(&server, query, None).await;
    let mut allowed = subscribe(
        &server,
        query,
        Some(&subscriber(&["https://example.com/books/{id}"])),
    )
    .await;
    let mut other = subscribe(
        &server,
        query,
        Some(&subscriber(&["https://example.com/authors/{id}"])),
    )
    .await;
    eventually("subscribed", || events.stats().subscribers == 3).await;
    let token = publisher(&["https://example.com/books/{id}"]);
    let form = [
        ("topic", "https://example.com/books/1"),
        ("private", "on"),
        ("id", "secret"),
        ("data", "s"),
    ];
    assert_eq!(publish(&server, Some(&token), &form).await.0, 200);
    let public = [
        ("topic", "https://example.com/books/2"),
        ("id", "public"),
        ("data", "p"),
    ];
    assert_eq!(publish(&server, Some(&token), &public).await.0, 200);
    assert_eq!(allowed.next().await.id, "secret");
    assert_eq!(allowed.next().await.id, "public");
    assert_eq!(
        anonymous.next().await.id,
        "public",
        "the private update skipped"
    );
    assert_eq!(
        other.next().await.id,
        "public",
        "the private update skipped"
    );
}

#[actix_web::test]
async fn a_subscriber_token_is_read_from_the_cookie_and_the_query_parameter() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(false));
    let token = subscriber(&["*"]);
    let mut by_query = subscribe(&server, &format!("topic=p&authorization={token}"), None).await;
    let mut by_cookie = SseClient::connect_with(&url(&server, "topic=p"), |req| {
        req.insert_header(("cookie", format!("mercureAuthorization={token}")))
    })
    .await;
    assert_eq!(by_cookie.status, 200);
    eventually("subscribed", || events.stats().subscribers == 2).await;
    let form = [("topic", "p"), ("private", "1"), ("id", "p1")];
    assert_eq!(
        publish(&server, Some(&publisher(&["p"])), &form).await.0,
        200
    );
    assert_eq!(by_query.next().await.id, "p1");
    assert_eq!(by_cookie.next().await.id, "p1");
}

#[actix_web::test]
async fn subscribers_without_a_token_are_refused_unless_the_hub_allows_them() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(false));
    let refused = SseClient::connect(&url(&server, "topic=a"), None).await;
    assert_eq!(refused.status, 401);
    let bad =
        SseClient::connect_with(&url(&server, "topic=a"), |r| r.bearer_auth("not.a.token")).await;
    assert_eq!(bad.status, 401);
    let forged = SseClient::connect_with(&url(&server, "topic=a"), |r| {
        r.bearer_auth(publisher(&["*"]))
    })
    .await;
    assert_eq!(forged.status, 401, "signed with the publisher's key");
    let ok =
        SseClient::connect_with(&url(&server, "topic=a"), |r| r.bearer_auth(subscriber(&[]))).await;
    assert_eq!(ok.status, 200);
}

#[actix_web::test]
async fn bad_subscriptions_are_refused_with_400() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    for query in [
        "",
        "x=1",
        "topic=https://example.com/{+path}",
        "topic=https://example.com/{id}.json",
    ] {
        let client = SseClient::connect(&url(&server, query), None).await;
        assert_eq!(client.status, 400, "{query}");
    }
}

#[actix_web::test]
async fn bad_publishes_are_refused_and_publish_nothing() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let all = publisher(&["*"]);
    let books = publisher(&["https://example.com/books/{id}"]);
    let no_claim = sign(PUBLISHER, json!({ "subscribe": ["*"] }));
    let big = "x".repeat(5000);
    type Form<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Option<&str>, Form, u16)] = &[
        (None, &[("topic", "a")], 401),
        (Some("not.a.token"), &[("topic", "a")], 401),
        (Some(&subscriber(&["*"])), &[("topic", "a")], 401),
        (Some(&no_claim), &[("topic", "a")], 403),
        (
            Some(&books),
            &[("topic", "https://example.com/authors/1")],
            403,
        ),
        (
            Some(&books),
            &[("topic", "https://example.com/books/1"), ("topic", "other")],
            403,
        ),
        (Some(&all), &[("data", "no topic")], 400),
        (Some(&all), &[("topic", "a"), ("id", "#fragment")], 400),
        (Some(&all), &[("topic", "")], 400),
        (Some(&all), &[("topic", "a"), ("retry", "soon")], 400),
        (Some(&all), &[("topic", "a"), ("data", &big)], 413),
    ];
    for (token, form, status) in cases {
        let (got, reason) = publish(&server, *token, form).await;
        assert_eq!(got, *status, "{form:?}: {reason}");
        assert!(!reason.is_empty(), "{form:?}: a reason is given");
    }
    // A body that is not a form.
    let mut res = awc::Client::new()
        .post(server.url(HUB))
        .bearer_auth(&all)
        .content_type("application/json")
        .send_body(r#"{"topic":"a"}"#)
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 400);
    assert!(String::from_utf8_lossy(&res.body().await.expect("body")).contains("form"));
    let res = awc::Client::new()
        .post(server.url(HUB))
        .bearer_auth(&all)
        .content_type("application/x-www-form-urlencoded")
        .send_body(&b"topic=a&data=\xff"[..])
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(events.stats().published, 0);
}

#[actix_web::test]
async fn a_cookie_publishes_only_from_an_allowed_origin() {
    let events = Broadcaster::new();
    let server = serve_hub(
        &events,
        hub(true).publish_origins(["https://app.example.com"]),
    );
    let cookie = format!("mercureAuthorization={}", publisher(&["*"]));
    let post = |origin: &'static str| {
        awc::Client::new()
            .post(server.url(HUB))
            .insert_header(("cookie", cookie.clone()))
            .insert_header(("origin", origin))
            .send_form(&[("topic", "a")])
    };
    assert_eq!(
        post("https://evil.example.org")
            .await
            .expect("post")
            .status()
            .as_u16(),
        403
    );
    assert_eq!(events.stats().published, 0);
    assert_eq!(
        post("https://app.example.com")
            .await
            .expect("post")
            .status()
            .as_u16(),
        200
    );
}

#[actix_web::test]
async fn resuming_with_a_publisher_id_by_header_or_query_and_from_earliest() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let token = publisher(&["*"]);
    for id in ["first", "second", "third"] {
        assert_eq!(
            publish(
                &server,
                Some(&token),
                &[("topic", "r"), ("id", id), ("data", id)]
            )
            .await
            .0,
            200
        );
    }
    let ids = |events: Vec<common::Event>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();

    let (mut by_header, _) = SseClient::open(&url(&server, "topic=r"), Some("first")).await;
    assert_eq!(
        by_header
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok()),
        Some("third")
    );
    assert_eq!(ids(by_header.take(2).await), ["second", "third"]);

    let mut by_query = subscribe(&server, "topic=r&lastEventID=second", None).await;
    assert_eq!(ids(by_query.take(1).await), ["third"]);

    let (mut header_wins, _) =
        SseClient::open(&url(&server, "topic=r&lastEventID=first"), Some("second")).await;
    assert_eq!(ids(header_wins.take(1).await), ["third"]);

    let mut earliest = subscribe(&server, "topic=r&lastEventID=earliest", None).await;
    assert_eq!(ids(earliest.take(3).await), ["first", "second", "third"]);

    // Live afterwards, and an update of `#[emit_event]` resumes by its own id.
    let emitted = events
        .publish_event(sse_core::Event::new("e").topic("r"))
        .expect("publish");
    assert_eq!(by_header.next().await.id, emitted.to_string());
    assert_eq!(
        publish(&server, Some(&token), &[("topic", "r"), ("id", "fourth")])
            .await
            .0,
        200
    );
    let mut after_emitted =
        subscribe(&server, &format!("topic=r&lastEventID={emitted}"), None).await;
    assert_eq!(ids(after_emitted.take(1).await), ["fourth"]);
}

#[actix_web::test]
async fn a_mercure_update_and_an_emit_event_arrive_on_the_same_streams() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true));
    let (mut app, _) = SseClient::open(&server.url("/events?topic=books/{id}"), None).await;
    let mut mercure = subscribe(&server, "topic=https://example.com/books/{id}", None).await;
    eventually("subscribed", || events.stats().subscribers == 2).await;

    let res = awc::Client::new()
        .put(server.url("/books/7"))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 200);
    let form = [
        ("topic", "https://example.com/books/8"),
        ("type", "book_updated"),
        ("id", "m-8"),
        ("data", r#"{"id":8}"#),
    ];
    assert_eq!(
        publish(&server, Some(&publisher(&["*"])), &form).await.0,
        200
    );

    for client in [&mut app, &mut mercure] {
        let emitted = client.next().await;
        assert_eq!(emitted.event, "book_updated");
        assert_eq!(
            serde_json::from_str::<Value>(&emitted.data).expect("json")["id"],
            7
        );
        let published = client.next().await;
        assert_eq!(
            (published.event.as_str(), published.id.as_str()),
            ("book_updated", "m-8")
        );
        assert_eq!(published.data, r#"{"id":8}"#);
    }
}

#[actix_web::test]
async fn discovery_adds_the_hub_link_beside_the_applications_own() {
    let app = actix_web::test::init_service(
        App::new()
            .wrap(Discovery::new(
                "https://hub.example.com/.well-known/mercure",
            ))
            .route(
                "/books/1",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .insert_header(("link", "</books>; rel=\"up\""))
                        .finish()
                }),
            ),
    )
    .await;
    let res = actix_web::test::call_service(
        &app,
        actix_web::test::TestRequest::get()
            .uri("/books/1")
            .to_request(),
    )
    .await;
    let links: Vec<_> = res
        .headers()
        .get_all("link")
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        links,
        [
            "</books>; rel=\"up\"",
            "<https://hub.example.com/.well-known/mercure>; rel=\"mercure\""
        ]
    );
}

#[actix_web::test]
async fn rs256_publisher_tokens_are_checked_with_the_public_key() {
    assert!(
        JwtKey::rs256_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n").is_err()
    );
    let public = include_bytes!("../fixtures/rs256-test-public.pem");
    let private = include_bytes!("../fixtures/rs256-test-private.pem");
    let events = Broadcaster::new();
    let hub = Mercure::new()
        .publisher_key(JwtKey::rs256_pem(public).expect("public key"))
        .anonymous(true);
    let server = serve_hub(&events, hub);
    let token = encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({ "mercure": { "publish": ["*"] } }),
        &EncodingKey::from_rsa_pem(private).expect("private key"),
    )
    .expect("sign");
    assert_eq!(
        publish(&server, Some(&token), &[("topic", "a")]).await.0,
        200
    );
    let hs256 = publisher(&["*"]);
    assert_eq!(
        publish(&server, Some(&hs256), &[("topic", "a")]).await.0,
        401
    );
    assert_eq!(events.stats().published, 1);
}

// The subscriptions API and its events (`Mercure::subscriptions`), CORS (`cors_origins`).

const SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions";
/// The selectors that cover every URL of the subscriptions API and every subscription event.
const SUBSCRIPTION_SELECTORS: [&str; 3] = [
    "/.well-known/mercure/subscriptions",
    "/.well-known/mercure/subscriptions/{topic}",
    "/.well-known/mercure/subscriptions/{topic}/{subscriber}",
];

/// `text` percent-encoded as the subscriptions API encodes a segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GETs `path` with `token` (if any) and `origin` (if any): the status, the headers and the
/// body.
async fn get(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> (u16, awc::http::header::HeaderMap, String) {
    let mut req = awc::Client::new().get(server.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(origin) = origin {
        req = req.insert_header(("origin", origin));
    }
    let mut res = req.send().await.expect("GET");
    let body = res.body().await.expect("body");
    (
        res.status().as_u16(),
        res.headers().clone(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn header<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[actix_web::test]
async fn the_subscriptions_api_lists_all_by_topic_and_one_subscriber_as_json_ld() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true).subscriptions(true));
    let book = "https://example.com/books/1";
    let template = "https://example.com/books/{id}";
    let alice = sign(
        SUBSCRIBER,
        json!({ "subscribe": [book], "payload": { "name": "alice" } }),
    );
    let _alice = subscribe(
        &server,
        &format!("topic={}&topic={}", segment(book), segment(template)),
        Some(&alice),
    )
    .await;
    let _anonymous = subscribe(&server, "topic=raw", None).await;
    eventually("subscribed", || events.stats().subscribers == 2).await;
    let (status, _) = publish(
        &server,
        Some(&publisher(&["*"])),
        &[("topic", "raw"), ("id", "the-last")],
    )
    .await;
    assert_eq!(status, 200);

    let reader = subscriber(&SUBSCRIPTION_SELECTORS);
    let (status, headers, body) = get(&server, SUBSCRIPTIONS, Some(&reader), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/ld+json")
    );
    let all: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(all["@context"], "https://mercure.rocks/");
    assert_eq!(all["id"], SUBSCRIPTIONS);
    assert_eq!(all["type"], "Subscriptions");
    assert_eq!(all["lastEventID"], "the-last");
    let list = all["subscriptions"].as_array().expect("a list");
    let topics: Vec<&str> = list.iter().filter_map(|s| s["topic"].as_str()).collect();
    assert_eq!(topics, [book, template, "raw"], "in the order of arrival");
    for s in list {
        let (topic, subscriber) = (
            s["topic"].as_str().unwrap_or_default(),
            s["subscriber"].as_str().unwrap_or_default(),
        );
        assert!(subscriber.starts_with("urn:uuid:"), "{s}");
        assert_eq!(s["type"], "Subscription");
        assert_eq!(s["active"], true);
        assert_eq!(
            s["id"],
            format!("{SUBSCRIPTIONS}/{}/{}", segment(topic), segment(subscriber))
        );
        assert!(s.get("@context").is_none() && s.get("lastEventID").is_none());
    }
    assert_eq!(
        list[0]["subscriber"], list[1]["subscriber"],
        "one subscriber"
    );
    assert_eq!(list[0]["payload"], json!({ "name": "alice" }));
    assert!(list[2].get("payload").is_none(), "anonymous: no payload");

    let by_topic = format!("{SUBSCRIPTIONS}/{}", segment(book));
    let (status, _, body) = get(&server, &by_topic, Some(&reader), None).await;
    assert_eq!(status, 200, "{body}");
    let of_topic: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(of_topic["id"], by_topic);
    assert_eq!(of_topic["type"], "Subscriptions");
    assert_eq!(of_topic["subscriptions"], json!([list[0]]));
    let (_, _, body) = get(
        &server,
        &format!("{SUBSCRIPTIONS}/nobody"),
        Some(&reader),
        None,
    )
    .await;
    let none: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(none["subscriptions"], json!([]));

    let one_id = list[0]["id"].as_str().expect("an id");
    let (status, headers, body) = get(&server, one_id, Some(&reader), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/ld+json")
    );
    let one: Value = serde_json::from_str(&body).expect("JSON");
    let mut expected = list[0].clone();
    expected["@context"] = json!("https://mercure.rocks/");
    expected["lastEventID"] = json!("the-last");
    assert_eq!(one, expected);
    let unknown = format!("{SUBSCRIPTIONS}/{}/urn%3Auuid%3Anobody", segment(book));
    assert_eq!(get(&server, &unknown, Some(&reader), None).await.0, 404);
}

#[actix_web::test]
async fn the_subscriptions_api_needs_a_token_covering_the_url_and_is_off_by_default() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true).subscriptions(true));
    let (status, headers, _) = get(&server, SUBSCRIPTIONS, None, None).await;
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "www-authenticate"), Some("Bearer"));
    let forged = publisher(&["*"]);
    assert_eq!(
        get(&server, SUBSCRIPTIONS, Some(&forged), None).await.0,
        401
    );
    let other = subscriber(&["https://example.com/books/{id}"]);
    assert_eq!(get(&server, SUBSCRIPTIONS, Some(&other), None).await.0, 403);
    let list_only = subscriber(&[SUBSCRIPTIONS]);
    assert_eq!(
        get(&server, SUBSCRIPTIONS, Some(&list_only), None).await.0,
        200
    );
    let (status, _, body) = get(
        &server,
        &format!("{SUBSCRIPTIONS}/a"),
        Some(&list_only),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("mercure.subscribe"), "{body}");
    let everything = subscriber(&["*"]);
    assert_eq!(
        get(
            &server,
            &format!("{SUBSCRIPTIONS}/a"),
            Some(&everything),
            None
        )
        .await
        .0,
        200
    );
    let by_query = format!("{SUBSCRIPTIONS}?authorization={list_only}");
    assert_eq!(get(&server, &by_query, None, None).await.0, 200);
    for (bad, says) in [
        ("/a%zz", "hexadecimal"),
        ("/%FF", "UTF-8"),
        ("/a/", "empty"),
    ] {
        let (status, _, body) = get(
            &server,
            &format!("{SUBSCRIPTIONS}{bad}"),
            Some(&everything),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains(says), "{bad}: {body}");
    }
    assert_eq!(
        get(
            &server,
            &format!("{SUBSCRIPTIONS}/a/b/c"),
            Some(&everything),
            None
        )
        .await
        .0,
        404
    );

    let off = serve_hub(&events, hub(true));
    assert_eq!(
        get(&off, SUBSCRIPTIONS, Some(&everything), None).await.0,
        404
    );
}

/// The next event of `client` whose data is a subscription of `topic`, skipping others
/// (the observer's own subscription events); fails the test after [`common::WAIT`].
async fn subscription_event(client: &mut SseClient, topic: &str) -> Value {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = (client.next_within(left).await)
            .unwrap_or_else(|| panic!("no subscription event for {topic} in time"));
        let data: Value = serde_json::from_str(&event.data).expect("JSON");
        if data["topic"] == topic {
            assert_eq!(event.event, "message");
            assert!(event.id.starts_with("urn:uuid:"), "{}", event.id);
            return data;
        }
    }
}

#[actix_web::test]
async fn subscription_events_announce_a_subscriber_active_then_inactive() {
    // Keep-alive comments every 100 ms: the server notices a closed connection at once.
    let events = Broadcaster::builder()
        .keep_alive(Some(Duration::from_millis(100)))
        .build();
    let server = serve_hub(&events, hub(true).subscriptions(true));
    let query = format!("topic={}", segment(SUBSCRIPTION_SELECTORS[2]));
    let mut observer = subscribe(&server, &query, Some(&subscriber(&SUBSCRIPTION_SELECTORS))).await;
    let mut anonymous = subscribe(&server, &query, None).await;
    let mut other = subscribe(
        &server,
        &query,
        Some(&subscriber(&["https://example.com/books/{id}"])),
    )
    .await;
    eventually("observers subscribed", || events.stats().subscribers == 3).await;

    let book = "https://example.com/books/1";
    let token = sign(
        SUBSCRIBER,
        json!({ "subscribe": [book], "payload": { "name": "bob" } }),
    );
    let bob = subscribe(&server, &format!("topic={}", segment(book)), Some(&token)).await;
    let active = subscription_event(&mut observer, book).await;
    let subscriber_id = active["subscriber"]
        .as_str()
        .expect("a subscriber")
        .to_owned();
    assert!(subscriber_id.starts_with("urn:uuid:"), "{active}");
    assert_eq!(
        active,
        json!({
            "@context": "https://mercure.rocks/",
            "id": format!("{SUBSCRIPTIONS}/{}/{}", segment(book), segment(&subscriber_id)),
            "type": "Subscription",
            "topic": book,
            "subscriber": subscriber_id,
            "active": true,
            "payload": { "name": "bob" },
        })
    );

    drop(bob);
    let inactive = subscription_event(&mut observer, book).await;
    let mut expected = active.clone();
    expected["active"] = json!(false);
    assert_eq!(inactive, expected);
    eventually("bob gone", || events.stats().subscribers == 3).await;
    anonymous.assert_quiet(QUIET).await;
    other.assert_quiet(QUIET).await;
}

#[actix_web::test]
async fn the_specs_subscriptions_template_grants_the_api_and_its_events() {
    // As the Mercure spec writes it: one selector with optional path segments (RFC 6570
    // level 3), in the claim and as the subscribed topic.
    const TEMPLATE: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true).subscriptions(true));
    let reader = subscriber(&[TEMPLATE]);
    let mut observer = subscribe(
        &server,
        &format!("topic={}", segment(TEMPLATE)),
        Some(&reader),
    )
    .await;
    eventually("observer subscribed", || events.stats().subscribers == 1).await;

    let book = "https://example.com/books/1";
    let _bob = subscribe(
        &server,
        &format!("topic={}", segment(book)),
        Some(&subscriber(&[book])),
    )
    .await;
    let active = subscription_event(&mut observer, book).await;
    assert_eq!(active["active"], json!(true), "{active}");
    let subscriber_id = active["subscriber"].as_str().expect("a subscriber");

    for path in [
        SUBSCRIPTIONS.to_owned(),
        format!("{SUBSCRIPTIONS}/{}", segment(book)),
        format!(
            "{SUBSCRIPTIONS}/{}/{}",
            segment(book),
            segment(subscriber_id)
        ),
    ] {
        let (status, _, body) = get(&server, &path, Some(&reader), None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // The template covers the API and nothing else.
    let (status, _, _) = get(&server, SUBSCRIPTIONS, Some(&subscriber(&[book])), None).await;
    assert_eq!(status, 403);
}

#[actix_web::test]
async fn publishing_on_a_subscription_topic_is_forbidden() {
    let events = Broadcaster::new();
    let server = serve_hub(&events, hub(true).subscriptions(true));
    let token = publisher(&["*"]);
    for topic in [
        "/.well-known/mercure/subscriptions/a/urn%3Auuid%3A1",
        "/.well-known/mercure/subscriptions",
        "https://example.com/.well-known/mercure/subscriptions/a/b",
    ] {
        let (status, body) = publish(&server, Some(&token), &[("topic", topic)]).await;
        assert_eq!(status, 403, "{topic}: {body}");
        let (status, _) = publish(
            &server,
            Some(&token),
            &[("topic", "books/1"), ("topic", topic)],
        )
        .await;
        assert_eq!(status, 403, "{topic} as an alternate topic");
    }
    assert_eq!(events.stats().published, 0);
}

#[actix_web::test]
async fn the_hub_answers_cors_preflights_and_marks_responses_for_listed_origins_only() {
    let events = Broadcaster::new();
    let app = "https://app.example.com";
    let evil = "https://evil.example.org";
    let server = serve_hub(&events, hub(true).subscriptions(true).cors_origins([app]));
    let preflight = |origin: &'static str, path: &str| {
        awc::Client::new()
            .request(awc::http::Method::OPTIONS, server.url(path))
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header(("access-control-request-headers", "authorization"))
            .send()
    };
    for path in [HUB, SUBSCRIPTIONS] {
        let res = preflight(app, path).await.expect("preflight");
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let headers = res.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), Some(app));
        assert_eq!(
            header(headers, "access-control-allow-credentials"),
            Some("true")
        );
        let methods = header(headers, "access-control-allow-methods").unwrap_or_default();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        let allowed = header(headers, "access-control-allow-headers").unwrap_or_default();
        assert!(allowed.contains("authorization"), "{allowed}");
        let res = preflight(evil, path).await.expect("preflight");
        assert_eq!(res.status().as_u16(), 400);
        assert!(res.headers().get("access-control-allow-origin").is_none());
    }

    // The streaming GET: the headers come with the response head.
    for (origin, allowed) in [(app, true), (evil, false)] {
        let stream = SseClient::connect_with(&url(&server, "topic=a"), |req| {
            req.insert_header(("origin", origin))
        })
        .await;
        assert_eq!(stream.status, 200);
        let acao = header(&stream.headers, "access-control-allow-origin");
        assert_eq!(acao, allowed.then_some(origin), "{origin}");
        // Without `Access-Control-Allow-Origin` the browser refuses the response, whatever
        // else it carries.
        if allowed {
            let credentials = header(&stream.headers, "access-control-allow-credentials");
            assert_eq!(credentials, Some("true"), "{origin}");
        }
    }
    // The publish and the subscriptions API.
    for (origin, allowed) in [(app, true), (evil, false)] {
        let res = awc::Client::new()
            .post(server.url(HUB))
            .bearer_auth(publisher(&["*"]))
            .insert_header(("origin", origin))
            .send_form(&[("topic", "a")])
            .await
            .expect("publish");
        assert_eq!(res.status().as_u16(), 200);
        let acao = header(res.headers(), "access-control-allow-origin");
        assert_eq!(acao, allowed.then_some(origin), "{origin}");
        let token = subscriber(&["*"]);
        let (status, headers, _) = get(&server, SUBSCRIPTIONS, Some(&token), Some(origin)).await;
        assert_eq!(status, 200);
        let acao = header(&headers, "access-control-allow-origin");
        assert_eq!(acao, allowed.then_some(origin), "{origin}");
    }
    // Without an origin, no CORS header at all.
    let (_, headers, _) = get(&server, SUBSCRIPTIONS, Some(&subscriber(&["*"])), None).await;
    assert!(headers.get("access-control-allow-origin").is_none());

    // `*`: any origin, echoed, as a browser wants with credentials.
    let any = serve_hub(&events, hub(true).cors_origins(["*"]));
    let stream = SseClient::connect_with(&url(&any, "topic=a"), |req| {
        req.insert_header(("origin", evil))
    })
    .await;
    assert_eq!(
        header(&stream.headers, "access-control-allow-origin"),
        Some(evil)
    );
    // Without `cors_origins`, no CORS at all.
    let none = serve_hub(&events, hub(true));
    let stream = SseClient::connect_with(&url(&none, "topic=a"), |req| {
        req.insert_header(("origin", app))
    })
    .await;
    assert!(stream.headers.get("access-control-allow-origin").is_none());
}

/// A hub on an SQLite event log where `first`, `second` and `third` were published, on an
/// instance started after that (as after a restart: nothing in its own history); its server
/// and the file.
async fn restarted_on_sqlite(name: &str) -> (Broadcaster, TestServer, std::path::PathBuf) {
    use sse_core::sql::EventLog;
    let path = std::env::temp_dir().join(format!(
        "sse-tests-mercure-{name}-{}.db",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("a SQLite file");
    EventLog::ensure_schema(&pool).await.expect("schema");
    let instance = |log: EventLog| Broadcaster::builder().event_log(&log).build();

    let first = instance(EventLog::open(&pool).await.expect("log"));
    let server = serve_hub(&first, hub(true));
    let token = publisher(&["*"]);
    for id in ["first", "second", "third"] {
        let form = [("topic", "r"), ("id", id), ("data", id)];
        assert_eq!(publish(&server, Some(&token), &form).await.0, 200);
    }
    eventually("written to the table", || first.stats().published == 3).await;
    drop(server);
    first.shutdown();

    let second = instance(EventLog::open(&pool).await.expect("log again"));
    let server = serve_hub(&second, hub(true));
    (second, server, path)
}

fn ids(events: Vec<common::Event>) -> Vec<String> {
    events.into_iter().map(|e| e.id).collect()
}

/// `earliest` on the SQL event log (the demo's default engine) replays the table, also on an
/// instance started after the updates were published, as after a restart: publishers' ids
/// and all.
#[actix_web::test]
async fn earliest_replays_the_sql_event_log_on_a_restarted_instance() {
    let (_events, server, path) = restarted_on_sqlite("earliest").await;
    let mut earliest = subscribe(&server, "topic=r&lastEventID=earliest", None).await;
    assert_eq!(ids(earliest.take(3).await), ["first", "second", "third"]);
    let token = publisher(&["*"]);
    let (status, _) = publish(&server, Some(&token), &[("topic", "r"), ("id", "fourth")]).await;
    assert_eq!(status, 200);
    assert_eq!(earliest.next().await.id, "fourth");
    let _ = std::fs::remove_file(path);
}

/// A publisher's id older than the instance's history (it restarted) is found in the SQL
/// event log: the client gets what followed it. An id the log does not hold is a reset.
#[actix_web::test]
async fn a_publishers_id_resumes_from_the_sql_event_log_after_a_restart() {
    let (_events, server, path) = restarted_on_sqlite("publisher-id").await;
    let (mut by_header, _) = SseClient::open(&url(&server, "topic=r"), Some("first")).await;
    assert_eq!(ids(by_header.take(2).await), ["second", "third"]);
    let mut by_query = subscribe(&server, "topic=r&lastEventID=second", None).await;
    assert_eq!(ids(by_query.take(1).await), ["third"]);

    let (mut unknown, _) = SseClient::open(&url(&server, "topic=r"), Some("never-published")).await;
    assert_eq!(unknown.next().await.event, sse_core::RESET_EVENT);
    let _ = std::fs::remove_file(path);
}
