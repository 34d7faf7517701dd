//! The event contract: `payload = ...` projections, the catalogue, and the documents served
//! next to the stream.

use actix_web::{test as actix_test, web, App};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};
use sse_core::testing::{capture, expect_event};
use sse_core::{auth::JwtAuth, emit_event, Broadcaster};

#[derive(Clone, Debug, Serialize)]
struct Account {
    id: u32,
    name: String,
    email: String,
}

/// What everyone may see of an account.
#[derive(Serialize, JsonSchema)]
struct AccountPublic {
    id: u32,
    name: String,
}

impl From<&Account> for AccountPublic {
    fn from(a: &Account) -> Self {
        AccountPublic {
            id: a.id,
            name: a.name.clone(),
        }
    }
}

fn ada() -> Account {
    Account {
        id: 7,
        name: "ada".into(),
        email: "ada@example.com".into(),
    }
}

#[emit_event("account_updated", topic = "accounts/{id}", payload = AccountPublic::from)]
async fn update() -> Result<web::Json<Account>, actix_web::Error> {
    Ok(web::Json(ada()))
}

#[derive(Serialize, JsonSchema)]
struct Tick {
    n: u64,
}

sse_core::declare_event!("tick", payload = Tick, topic = "ticks/{n}", to_others);

sse_core::declare_event!(
    "account_secret",
    payload = AccountPublic,
    topic = "accounts/{id}/private",
    private
);

// The same event name with another payload: a conflict the catalogue reports, with both
// places. (This test binary's catalogue is broken on purpose; the demo's is checked whole.)
#[emit_event("tick")]
async fn wrong_tick() -> web::Json<AccountPublic> {
    web::Json(AccountPublic::from(&ada()))
}

// A topic field the projection lacks: every `account_by_email` event would fail to publish.
#[emit_event("account_by_email", topic = "accounts/{email}", payload = AccountPublic::from)]
async fn by_email() -> web::Json<Account> {
    web::Json(ada())
}

// A payload type without `JsonSchema`: the documents could only call it `unknown`.
#[emit_event("account_raw")]
async fn raw() -> web::Json<Account> {
    web::Json(ada())
}

#[actix_rt::test]
async fn a_projection_is_published_and_the_response_is_unchanged() {
    let (response, events) = capture(update()).await;
    assert_eq!(response.expect("ok").email, "ada@example.com");
    expect_event("account_updated")
        .topic("accounts/7")
        .public()
        .payload_contains(json!({"id": 7, "name": "ada"}))
        .without_field("email")
        .in_(&events);
    assert_eq!(events[0].payload, json!({"id": 7, "name": "ada"}));
}

#[test]
#[should_panic(expected = "payload.name: expected \"grace\", found \"ada\"")]
fn expect_event_says_what_differs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (_, events) = rt.block_on(capture(update()));
    let _ = expect_event("account_updated")
        .payload_contains(json!({"name": "grace"}))
        .in_(&events);
}

#[test]
fn the_catalogue_lists_handlers_and_declared_events() {
    let catalogue = sse_core::contract::Catalogue::linked();
    let updated = catalogue
        .events()
        .iter()
        .find(|e| e.name == "account_updated")
        .expect("account_updated is catalogued");
    assert_eq!(updated.topic, Some("accounts/{id}"));
    assert!(!updated.private);
    assert_eq!(updated.origin, "contract::update");
    assert!(updated.location.file.ends_with("contract.rs"));
    assert_eq!(updated.payload_name().as_deref(), Some("AccountPublic"));
    let schema = updated.schema.as_ref().expect("schema (feature `schema`)");
    assert_eq!(schema["properties"]["id"]["type"], "integer");
    assert!(schema["properties"].get("email").is_none());

    let tick = catalogue
        .events()
        .iter()
        .find(|e| e.origin == "contract" && e.name == "tick");
    let tick = tick.expect("declared tick");
    assert!(tick.to_others);
}

#[test]
fn the_catalogue_reports_one_name_with_two_payloads_and_both_places() {
    let problems = sse_core::contract::Catalogue::linked().problems();
    let conflict = problems
        .iter()
        .find(|p| p.contains("`tick` is published with two different payloads"))
        .unwrap_or_else(|| panic!("{problems:#?}"));
    assert!(conflict.contains("contract::wrong_tick"), "{conflict}");
    assert_eq!(conflict.matches("contract.rs:").count(), 2, "{conflict}");
    let result = std::panic::catch_unwind(sse_core::testing::check_catalogue);
    assert!(result.is_err());
}

#[actix_rt::test]
async fn the_documents_are_served_next_to_the_stream() {
    let events = Broadcaster::new();
    let app = actix_test::init_service(App::new().configure(events.service("/events"))).await;
    let req = actix_test::TestRequest::get()
        .uri("/events/asyncapi.json")
        .insert_header(("host", "example.test"))
        .to_request();
    let doc: Value = actix_test::call_and_read_body_json(&app, req).await;
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["servers"]["stream"]["host"], "example.test");
    assert_eq!(doc["servers"]["stream"]["pathname"], "/events");
    assert_eq!(doc["channels"]["accounts_id"]["address"], "accounts/{id}");
    assert!(doc["channels"]["accounts_id"]["parameters"]["id"].is_object());
    assert_eq!(
        doc["components"]["messages"]["account_updated"]["title"],
        "AccountPublic"
    );
    assert_eq!(
        doc["components"]["schemas"]["AccountPublic"]["title"],
        "AccountPublic"
    );
    let req = actix_test::TestRequest::get()
        .uri("/events/events.d.ts")
        .to_request();
    let ts =
        String::from_utf8(actix_test::call_and_read_body(&app, req).await.to_vec()).expect("utf-8");
    assert!(ts.contains("export interface AccountPublic {"), "{ts}");
    assert!(ts.contains("  account_updated: AccountPublic;"), "{ts}");

    let app =
        actix_test::init_service(App::new().configure(events.service_without_documents("/events")))
            .await;
    let req = actix_test::TestRequest::get()
        .uri("/events/asyncapi.json")
        .to_request();
    assert_eq!(actix_test::call_service(&app, req).await.status(), 404);
}

#[test]
fn the_catalogue_reports_a_topic_field_the_payload_lacks() {
    let problems = sse_core::contract::Catalogue::linked().problems();
    let problem = problems
        .iter()
        .find(|p| p.contains("`account_by_email`"))
        .unwrap_or_else(|| panic!("not reported: {problems:#?}"));
    assert!(problem.contains("no field `email`"), "{problem}");
    assert!(problem.contains("contract.rs:"), "{problem}");
}

#[test]
fn the_catalogue_reports_a_payload_without_a_schema() {
    let problems = sse_core::contract::Catalogue::linked().problems();
    let problem = problems
        .iter()
        .find(|p| p.contains("`account_raw`"))
        .unwrap_or_else(|| panic!("not reported: {problems:#?}"));
    assert!(problem.contains("contract::Account"), "{problem}");
    assert!(
        problem.contains("derive `schemars::JsonSchema`"),
        "{problem}"
    );
}

/// The served AsyncAPI document of `events`, mounted at `/events`.
async fn served_asyncapi(events: &Broadcaster) -> Value {
    let app = actix_test::init_service(App::new().configure(events.service("/events"))).await;
    let req = actix_test::TestRequest::get()
        .uri("/events/asyncapi.json")
        .to_request();
    actix_test::call_and_read_body_json(&app, req).await
}

#[actix_rt::test]
async fn the_document_advertises_no_security_scheme_without_an_authorizer() {
    let doc = served_asyncapi(&Broadcaster::new()).await;
    assert!(
        doc["components"].get("securitySchemes").is_none(),
        "{doc:#}"
    );
    let private = &doc["operations"]["receive_account_secret"];
    assert!(private.is_object(), "{doc:#}");
    assert!(private.get("security").is_none(), "{private:#}");
}

#[actix_rt::test]
async fn the_document_advertises_the_credentials_the_authorizer_reads() {
    let auth = JwtAuth::hs256(b"a secret of at least 32 bytes, please");
    let events = Broadcaster::builder().authorizer(auth).build();
    let doc = served_asyncapi(&events).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{doc:#}");
    assert_eq!(schemes["cookie"]["name"], "sse_token", "{doc:#}");
    assert!(schemes.get("query").is_none(), "{doc:#}");
    assert_eq!(
        doc["operations"]["receive_account_secret"]["security"],
        json!([
            { "$ref": "#/components/securitySchemes/bearer" },
            { "$ref": "#/components/securitySchemes/cookie" },
        ])
    );
    assert!(doc["operations"]["receive_tick"].get("security").is_none());
}

#[actix_rt::test]
async fn a_payload_schema_is_defined_once_and_referenced() {
    let doc = served_asyncapi(&Broadcaster::new()).await;
    // `AccountPublic` is the payload of three events.
    let reference = json!({ "$ref": "#/components/schemas/AccountPublic" });
    for name in ["account_updated", "account_by_email", "account_secret"] {
        assert_eq!(
            doc["components"]["messages"][name]["payload"], reference,
            "{name}"
        );
    }
    let text = doc.to_string();
    assert_eq!(
        text.matches("What everyone may see of an account.").count(),
        1
    );
}
