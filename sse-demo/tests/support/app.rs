//! The demo app served in-process on an ephemeral loopback port, with a fresh database: a
//! SQLite file, or a PostgreSQL database of its own.

#[path = "postgres.rs"]
mod postgres;

use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use serde_json::Value;
use sse_core::Broadcaster;
use sse_demo::login::LoginKey;
use tempfile::TempDir;

/// An origin the test server allows besides its own.
pub const ALLOWED_ORIGIN: &str = "http://allowed.test";

pub struct TestApp {
    pub url: String,
    pub events: Broadcaster,
    pub client: awc::Client,
    handle: ServerHandle,
    _database: Fresh,
}

/// Keeps the test's database until the app is dropped.
enum Fresh {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres(#[allow(dead_code)] postgres::TestDatabase),
}

impl TestApp {
    /// On a fresh SQLite file.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("users.db");
        let url = db.to_str().expect("UTF-8 temp path").to_owned();
        Self::start_on(&url, Fresh::Sqlite(dir)).await
    }

    /// On a fresh PostgreSQL database (tests using it need PostgreSQL on 127.0.0.1:5432).
    #[allow(dead_code)] // not every test binary runs on PostgreSQL
    pub async fn start_postgres() -> Self {
        let db = postgres::TestDatabase::create();
        let url = db.url.clone();
        Self::start_on(&url, Fresh::Postgres(db)).await
    }

    async fn start_on(url: &str, database: Fresh) -> Self {
        let pool = sse_demo::db::connect(url).await.expect("database");
        let log = pool.event_log().await.expect("the event log");
        let login_key = LoginKey::new(&b"test secret for the demo's login tokens"[..]);
        let events = Broadcaster::builder()
            .event_log(&log)
            .history(64)
            .keep_alive(Duration::from_millis(500))
            .authorizer(login_key.authorizer())
            .private_topics([LoginKey::private_topics().expect("selector")])
            .build();
        let presence = sse_demo::presence::Presence::start(&events);
        let server = HttpServer::new({
            let events = events.clone();
            move || {
                App::new()
                    .wrap(presence.middleware())
                    .wrap(sse_demo::cors(&[ALLOWED_ORIGIN.to_owned()]))
                    .configure(sse_demo::app_config(pool.clone(), events.clone()))
                    .configure(presence.config())
                    .configure(sse_demo::login::config(login_key.clone()))
            }
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind an ephemeral port");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(5))
            .finish();
        TestApp {
            url: format!("http://{addr}"),
            events,
            client,
            handle,
            _database: database,
        }
    }

    pub fn stream_url(&self) -> String {
        format!("{}{}", self.url, sse_demo::STREAM_PATH)
    }

    /// Sends `method path` with an optional JSON body; returns the status and the JSON body
    /// (`Value::Null` if the body is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self.client.request(method, format!("{}{path}", self.url));
        let res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        };
        read(res).await
    }

    /// Sends `body` as it is, with the given content type.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, Value) {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let res = self
            .client
            .request(method, format!("{}{path}", self.url))
            .insert_header(("content-type", content_type))
            .send_body(body.to_owned())
            .await;
        read(res).await
    }

    pub async fn stop(self) {
        self.events.stop_server(&self.handle, true).await;
    }
}

async fn read(
    res: Result<
        awc::ClientResponse<
            impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>,
        >,
        awc::error::SendRequestError,
    >,
) -> (u16, Value) {
    let mut res = res.unwrap_or_else(|err| panic!("request failed: {err}"));
    let status = res.status().as_u16();
    let body = res.body().limit(1 << 20).await.expect("response body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
