//! Topics, private events, authorization, limits and exclude-the-sender, against real servers.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpServer};
use common::{eventually, serve, start, SseClient};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::json;
use sse_core::{
    auth::JwtAuth, emit_event, wire::WireFormat, Broadcaster, Event, TopicSelector, RESET_EVENT,
};

const PATH: &str = "/events";
const SECRET: &[u8] = b"test secret, long enough for HS256 use";
const QUIET: Duration = Duration::from_millis(300);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn token(subscribe: &[&str], exp: u64) -> String {
    let claims = json!({ "sse": { "subscribe": subscribe }, "exp": exp });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign")
}

fn private_broadcaster(format: WireFormat) -> Broadcaster {
    Broadcaster::builder()
        .wire_format(format)
        .authorizer(JwtAuth::hs256(SECRET).query_parameter(true))
        .private_topics([TopicSelector::parse("users/{id}/private").expect("selector")])
        .build()
}

async fn connect_as(url: &str, token: Option<&str>, last_event_id: Option<&str>) -> SseClient {
    SseClient::connect_with(url, |mut req| {
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            req = req.insert_header(("Last-Event-ID", id));
        }
        req
    })
    .await
}

/// The payload's `n` for events in the `Named` or `Envelope` format.
fn n_of(data: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(data).expect("json");
    v.get("data").unwrap_or(&v)["n"].as_i64().expect("n")
}

#[actix_web::test]
async fn exact_and_wildcard_selectors_filter_events() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let mut exact = SseClient::connect(&server.url("/events?topic=users/42"), None).await;
    let mut wild = SseClient::connect(&server.url("/events?topic=users/*"), None).await;
    let mut var = SseClient::connect(&server.url("/events?topic=users/{id}"), None).await;
    let mut all = SseClient::connect(&server.url(PATH), None).await;
    let mut two =
        SseClient::connect(&server.url("/events?topic=orders/1&topic=users/7"), None).await;
    eventually("subscribed", || events.stats().subscribers == 5).await;

    events
        .publish_event(Event::new("u").json(&json!({"n": 1})).topic("users/42"))
        .unwrap();
    events
        .publish_event(
            Event::new("u")
                .json(&json!({"n": 2}))
                .topic("users/7/orders"),
        )
        .unwrap();
    events
        .publish_event(Event::new("o").json(&json!({"n": 3})).topic("orders/1"))
        .unwrap();
    events
        .publish_event(Event::new("u").json(&json!({"n": 4})).topic("users/7"))
        .unwrap();

    let ns = |got: Vec<common::Event>| got.iter().map(|e| n_of(&e.data)).collect::<Vec<_>>();
    assert_eq!(ns(exact.take(1).await), [1]);
    assert_eq!(ns(wild.take(3).await), [1, 2, 4]);
    assert_eq!(ns(var.take(2).await), [1, 4]);
    assert_eq!(ns(all.take(4).await), [1, 2, 3, 4]);
    assert_eq!(ns(two.take(2).await), [3, 4]);
    for client in [&mut exact, &mut wild, &mut var, &mut two] {
        client.assert_quiet(QUIET).await;
    }
}

#[derive(serde::Serialize)]
struct User {
    id: u64,
    profile: Profile,
}

#[derive(serde::Serialize)]
struct Profile {
    team: String,
}

#[emit_event("user_updated", topic = "users/{id}")]
async fn update_user(id: web::Path<u64>) -> web::Json<User> {
    web::Json(User {
        id: id.into_inner(),
        profile: Profile {
            team: "core".into(),
        },
    })
}

#[emit_event("team_changed", topic = "teams/{profile.team}/{id}")]
#[emit_event("broken", topic = "users/{missing}")]
async fn nested(id: web::Path<u64>) -> web::Json<User> {
    web::Json(User {
        id: id.into_inner(),
        profile: Profile {
            team: "core".into(),
        },
    })
}

#[actix_web::test]
async fn macro_topics_come_from_the_payload_and_a_missing_field_is_counted() {
    let events = Broadcaster::new();
    let server = {
        let events = events.clone();
        start(1, move |cfg| {
            events.service(PATH)(cfg);
            cfg.route("/users/{id}", web::put().to(update_user))
                .route("/nested/{id}", web::put().to(nested));
        })
    };
    let mut follower = SseClient::connect(&server.url("/events?topic=users/42"), None).await;
    let mut team = SseClient::connect(&server.url("/events?topic=teams/core/*"), None).await;
    eventually("subscribed", || events.stats().subscribers == 2).await;
    let client = awc::Client::default();
    for id in [7, 42] {
        let resp = client
            .put(server.url(&format!("/users/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let got = follower.next().await;
    assert_eq!(got.event, "user_updated");
    assert!(got.data.contains("\"id\":42"), "{}", got.data);
    follower.assert_quiet(QUIET).await;

    let resp = client.put(server.url("/nested/5")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the response is unaffected");
    let got = team.next().await;
    assert_eq!(got.event, "team_changed");
    let stats = events.stats();
    assert_eq!(stats.topic_failures, 1);
    assert_eq!(stats.emit_failures, 1);
    assert_eq!(stats.published, 3, "`broken` was not published");
}

#[actix_web::test]
async fn capture_fills_topics() {
    let (_, captured) = sse_core::testing::capture(nested(web::Path::from(3))).await;
    assert_eq!(
        captured.len(),
        1,
        "the event with a bad template is not captured"
    );
    assert_eq!(captured[0].topics, ["teams/core/3"]);
}

/// Private events reach only the authorized subscriber: live, on replay, in both formats.
async fn private_delivery(format: WireFormat) {
    let events = private_broadcaster(format);
    let server = serve(&events, PATH);
    let exp = now() + 600;
    let alice = token(&["users/1/private"], exp);
    let bob = token(&["users/2/private"], exp);

    let mut a = connect_as(&server.url("/events?topic=users/*"), Some(&alice), None).await;
    let mut a_own = connect_as(
        &server.url("/events?topic=users/1/private"),
        Some(&alice),
        None,
    )
    .await;
    let mut b = connect_as(&server.url("/events?topic=users/*"), Some(&bob), None).await;
    let mut anon = connect_as(&server.url("/events?topic=users/*"), None, None).await;
    let mut all = connect_as(&server.url(PATH), Some(&alice), None).await;
    eventually("subscribed", || events.stats().subscribers == 5).await;
    let first = events.last_event_id().to_string();

    let private = |user: u32, data| {
        Event::new("secret")
            .json(&data)
            .topic(format!("users/{user}/private"))
            .private()
    };
    events.publish_event(private(1, json!({"n": 1}))).unwrap();
    events.publish_event(private(2, json!({"n": 2}))).unwrap();
    events
        .publish_event(Event::new("public").json(&json!({"n": 3})).topic("users/1"))
        .unwrap();

    let ns = |got: Vec<common::Event>| got.iter().map(|e| n_of(&e.data)).collect::<Vec<_>>();
    assert_eq!(ns(a.take(2).await), [1, 3]);
    assert_eq!(ns(a_own.take(1).await), [1]);
    assert_eq!(ns(b.take(2).await), [2, 3]);
    assert_eq!(ns(anon.take(1).await), [3]);
    assert_eq!(ns(all.take(1).await), [3], "no topic: public events only");
    for client in [&mut a, &mut a_own, &mut b, &mut anon, &mut all] {
        client.assert_quiet(QUIET).await;
    }

    // Replay from before the three events: the same filtering.
    let mut a = connect_as(
        &server.url("/events?topic=users/*"),
        Some(&alice),
        Some(&first),
    )
    .await;
    let mut anon = connect_as(&server.url("/events?topic=users/*"), None, Some(&first)).await;
    assert_eq!(ns(a.take(2).await), [1, 3]);
    assert_eq!(ns(anon.take(1).await), [3]);
    a.assert_quiet(QUIET).await;
    anon.assert_quiet(QUIET).await;

    // The token in the query string works too, when enabled.
    let url = server.url(&format!("/events?topic=users/2/private&access_token={bob}"));
    let mut by_query = connect_as(&url, None, Some(&first)).await;
    assert_eq!(by_query.status, 200);
    assert_eq!(ns(by_query.take(1).await), [2]);
}

#[actix_web::test]
async fn private_events_reach_only_authorized_subscribers() {
    private_delivery(WireFormat::Named).await;
}

#[actix_web::test]
async fn private_events_do_not_leak_through_the_envelope_format() {
    private_delivery(WireFormat::Envelope).await;
}

#[actix_web::test]
async fn rs256_tokens_are_accepted() {
    let public = include_bytes!("../fixtures/rs256-test-public.pem");
    let private = include_bytes!("../fixtures/rs256-test-private.pem");
    let events = Broadcaster::builder()
        .authorizer(JwtAuth::rs256_pem(public).expect("public key"))
        .build();
    let server = serve(&events, PATH);
    let claims = json!({ "sse": { "subscribe": ["orders/*"] }, "exp": now() + 600 });
    let token = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(private).expect("private key"),
    )
    .expect("sign");
    let mut client = connect_as(&server.url("/events?topic=orders/*"), Some(&token), None).await;
    assert_eq!(client.status, 200);
    eventually("subscribed", || events.stats().subscribers == 1).await;
    let shipped = Event::new("order_shipped").json(&json!({"n": 9}));
    events
        .publish_event(shipped.topic("orders/9").private())
        .unwrap();
    assert_eq!(n_of(&client.next().await.data), 9);
    // An HS256 token is refused by an RS256 authorizer.
    let hs = token_for_any();
    assert_eq!(
        connect_as(&server.url(PATH), Some(&hs), None).await.status,
        401
    );
}

fn token_for_any() -> String {
    token(&["*"], now() + 600)
}

/// A selector such as `k1` + 1018 `/` + `*` once passed (it fits in 1024 bytes) and cost a
/// level of the subscription index per segment: about 2 MiB per anonymous stream.
#[actix_web::test]
async fn selectors_with_empty_or_too_many_segments_are_refused_with_a_reason() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let deep = format!("k1{}*", "/".repeat(1018));
    let seventeen = vec!["s"; 17].join("/");
    let wide: Vec<String> = (0..5)
        .map(|i| format!("topic=w{i}/{}", vec!["{x}"; 14].join("/")))
        .collect();
    let cases = [
        ("empty segments", format!("topic={deep}"), "empty segment"),
        ("a trailing `/`", "topic=users/".to_owned(), "empty segment"),
        ("`//`", "topic=users//42".to_owned(), "empty segment"),
        ("17 segments", format!("topic={seventeen}"), "at most 16"),
        ("75 segments in all", wide.join("&"), "at most 64"),
    ];
    let client = awc::Client::default();
    for (what, query, reason) in cases {
        let url = server.url(&format!("{PATH}?{query}"));
        let mut resp = client.get(url).send().await.expect("request");
        assert_eq!(resp.status().as_u16(), 400, "{what}");
        let body = resp.body().await.expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(reason), "{what}: {body}");
    }
    assert_eq!(events.stats().topic_subscribers, 0);
}

#[actix_web::test]
async fn repeated_selectors_count_once() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let query = vec!["topic=*"; 40].join("&");
    let mut everything = SseClient::connect(&server.url(&format!("{PATH}?{query}")), None).await;
    assert_eq!(everything.status, 200, "40 times `*` is one selector");
    eventually("subscribed", || events.stats().topic_subscribers == 1).await;
    assert_eq!(events.presence("users/42"), 1);
    events
        .publish_event(Event::new("u").json(&json!({"n": 1})).topic("users/42"))
        .unwrap();
    assert_eq!(n_of(&everything.next().await.data), 1);
    everything.assert_quiet(QUIET).await;
}

#[actix_web::test]
async fn published_topics_follow_the_selector_rules() {
    let events = Broadcaster::new();
    let server = serve(&events, PATH);
    let mut client = SseClient::connect(&server.url("/events?topic=users/{id}"), None).await;
    eventually("subscribed", || events.stats().topic_subscribers == 1).await;
    // A topic no selector could name exactly is refused when published.
    assert!(events
        .publish_event(Event::new("u").json(&json!({"n": 0})).topic("users//1"))
        .is_err());
    assert!(events
        .publish_event(Event::new("u").json(&json!({"n": 0})).topic("users/1/"))
        .is_err());
    events
        .publish_event(Event::new("u").json(&json!({"n": 1})).topic("users/1"))
        .unwrap();
    assert_eq!(n_of(&client.next().await.data), 1);
}

#[actix_web::test]
async fn bad_requests_get_precise_statuses() {
    let events = private_broadcaster(WireFormat::Named);
    let server = serve(&events, PATH);
    let exp = now() + 600;
    let alice = token(&["users/1/private"], exp);
    let expired = token(&["users/1/private"], now() - 10);
    let forged = {
        let claims = json!({ "sse": { "subscribe": ["*"] }, "exp": exp });
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"wrong"),
        )
        .unwrap()
    };
    let many = (0..40)
        .map(|i| format!("topic=t/{i}"))
        .collect::<Vec<_>>()
        .join("&");
    let long = format!("topic={}", "x".repeat(5000));
    let cases: Vec<(&str, String, Option<&str>, u16)> = vec![
        (
            "invalid token on a public stream",
            PATH.into(),
            Some("not.a.jwt"),
            401,
        ),
        ("forged token", PATH.into(), Some(&forged), 401),
        ("expired token", PATH.into(), Some(&expired), 401),
        (
            "private topic without a token",
            "/events?topic=users/1/private".into(),
            None,
            401,
        ),
        (
            "private topic not allowed",
            "/events?topic=users/2/private".into(),
            Some(&alice),
            403,
        ),
        (
            "wildcard over private topics",
            "/events?topic=users/{id}/private".into(),
            Some(&alice),
            403,
        ),
        (
            "malformed selector",
            "/events?topic=users/%7B".into(),
            None,
            400,
        ),
        ("misplaced wildcard", "/events?topic=*/x".into(), None, 400),
        ("empty selector", "/events?topic=".into(), None, 400),
        ("too many selectors", format!("/events?{many}"), None, 400),
        ("bad client id", "/events?client_id=%20".into(), None, 400),
        (
            "over-long query string",
            format!("/events?{long}"),
            None,
            414,
        ),
        (
            "allowed private topic",
            "/events?topic=users/1/private".into(),
            Some(&alice),
            200,
        ),
        (
            "public topics need no token",
            "/events?topic=users/*".into(),
            None,
            200,
        ),
    ];
    for (what, path, token, status) in &cases {
        let client = connect_as(&server.url(path), *token, None).await;
        assert_eq!(client.status, *status, "{what}");
        if *status == 401 {
            assert!(client.headers.contains_key("www-authenticate"), "{what}");
        }
    }
    // A non-bearer Authorization header is an invalid credential too.
    let client = SseClient::connect_with(&server.url(PATH), |r| {
        r.insert_header(("Authorization", "Basic YTpi"))
    })
    .await;
    assert_eq!(client.status, 401);
    let stats = events.stats();
    assert_eq!(stats.unauthorized, 5);
    assert_eq!(stats.forbidden, 2);
    assert_eq!(stats.bad_requests, 6);
}

#[actix_web::test]
async fn a_token_in_a_cookie_is_read() {
    let events = private_broadcaster(WireFormat::Named);
    let server = serve(&events, PATH);
    let alice = token(&["users/1/private"], now() + 600);
    let url = server.url("/events?topic=users/1/private");
    let client = SseClient::connect_with(&url, |r| {
        r.insert_header(("Cookie", format!("sse_token={alice}")))
    })
    .await;
    assert_eq!(client.status, 200);
}

#[actix_web::test]
async fn a_stream_ends_when_its_token_expires() {
    let events = private_broadcaster(WireFormat::Named);
    let server = serve(&events, PATH);
    let soon = token(&["users/1/private"], now() + 2);
    let mut client = connect_as(
        &server.url("/events?topic=users/1/private"),
        Some(&soon),
        None,
    )
    .await;
    assert_eq!(client.status, 200);
    client.assert_ends().await;
    eventually("counted", || events.stats().expired == 1).await;
}

#[actix_web::test]
async fn subscriber_limits_refuse_with_retry_after() {
    // The test server allows half-closed connections (actix-web's default), so a dropped client
    // is noticed at the next write: a short keep-alive makes that write come soon.
    let events = Broadcaster::builder()
        .max_subscribers_per_ip(2)
        .keep_alive(Duration::from_millis(200))
        .build();
    let server = serve(&events, PATH);
    let first = SseClient::connect(&server.url(PATH), None).await;
    let _second = SseClient::connect(&server.url(PATH), None).await;
    let third = SseClient::connect(&server.url(PATH), None).await;
    assert_eq!(third.status, 503);
    assert!(third.headers.contains_key("retry-after"));
    assert_eq!(events.stats().over_limit, 1);
    drop(first);
    eventually("a place freed", || events.stats().subscribers == 1).await;
    let again = SseClient::connect(&server.url(PATH), None).await;
    assert_eq!(again.status, 200);

    let events = Broadcaster::builder().max_subscribers(1).build();
    let server = serve(&events, PATH);
    let _only = SseClient::connect(&server.url(PATH), None).await;
    let refused = SseClient::connect(&server.url(PATH), None).await;
    assert_eq!(refused.status, 503);
    assert_eq!(events.stats().over_limit, 1);
}

#[emit_event("note_saved", topic = "notes", to_others)]
async fn save_note() -> web::Json<serde_json::Value> {
    web::Json(json!({"n": 1}))
}

#[actix_web::test]
async fn to_others_skips_the_senders_stream() {
    let events = Broadcaster::new();
    let app_events = events.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sse_core::http::ClientIdMiddleware)
            .configure(app_events.service(PATH))
            .route("/notes", web::post().to(save_note))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    actix_web::rt::spawn(server);
    let url = |p: &str| format!("http://{addr}{p}");

    let mut sender = SseClient::connect(&url("/events?topic=notes&client_id=tab-a"), None).await;
    let mut other = SseClient::connect_with(&url("/events?topic=notes"), |r| {
        r.insert_header(("X-SSE-Client-Id", "tab-b"))
    })
    .await;
    eventually("subscribed", || events.stats().subscribers == 2).await;
    let client = awc::Client::default();
    let resp = client
        .post(url("/notes"))
        .insert_header(("X-SSE-Client-Id", "tab-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(other.next().await.event, "note_saved");
    sender.assert_quiet(QUIET).await;
    // A change from someone else reaches the first tab.
    client.post(url("/notes")).send().await.unwrap();
    assert_eq!(sender.next().await.event, "note_saved");
    assert_eq!(other.next().await.event, "note_saved");
}

#[actix_web::test]
async fn a_reset_still_reaches_a_filtered_subscriber() {
    let events = Broadcaster::builder().history(2).build();
    let server = serve(&events, PATH);
    let old = events.publish("e", &0).unwrap().to_string();
    for i in 0..5 {
        events.publish("e", &i).unwrap();
    }
    let mut client = SseClient::connect(&server.url("/events?topic=x"), Some(&old)).await;
    assert_eq!(client.next().await.event, RESET_EVENT);
}

proptest! {
    #[test]
    fn selector_parsing_never_panics(s in "\\PC{0,40}", t in "\\PC{0,40}") {
        if let Ok(sel) = TopicSelector::parse(&s) {
            let _ = sel.matches(&t);
        }
    }

    #[test]
    fn exact_selectors_match_only_themselves(
        s in "[a-z0-9]{1,3}(/[a-z0-9]{1,3}){0,3}",
        t in "[a-z0-9/]{1,12}",
    ) {
        let sel = TopicSelector::parse(&s).expect("plain text is an exact selector");
        prop_assert_eq!(sel.matches(&t), s == t);
    }

    #[test]
    fn containment_is_sound(
        a in "(a|b|\\{v\\}|)(/(a|b|\\{v\\}|))*(/\\*)?",
        b in "(a|b|\\{v\\}|)(/(a|b|\\{v\\}|))*(/\\*)?",
        t in "(a|b|c|)(/(a|b|c|)){0,4}",
    ) {
        if let (Ok(a), Ok(b)) = (TopicSelector::parse(&a), TopicSelector::parse(&b)) {
            if a.is_within(&b) && a.matches(&t) {
                prop_assert!(b.matches(&t), "{a} within {b}, matches {t} but {b} does not");
            }
        }
    }

    #[test]
    fn variables_match_one_nonempty_segment(seg in "[a-z0-9]{0,6}", extra in "(/[a-z]{0,3})?") {
        let sel = TopicSelector::parse("users/{id}").unwrap();
        let topic = format!("users/{seg}{extra}");
        prop_assert_eq!(sel.matches(&topic), !seg.is_empty() && extra.is_empty());
    }
}
