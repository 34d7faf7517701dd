//! The baseline: the hand-made broadcaster found in many actix apps. A global notifier holds a
//! `tokio::sync::broadcast<String>` (capacity 100); handlers wrap their result in
//! `{"event": ..., "data": ...}` and call `notify` by hand; each subscriber turns every message
//! into its own `actix_web_lab::sse::Event` (formatted per subscriber), lagged messages are
//! skipped silently, and the browser reads them with `onmessage`.
//!
//! Events with a topic (the `targeted` preset) go the way such apps add topics: every
//! subscriber receives every message and skips those whose topic is not the one it asked for
//! with `?topic=`.

use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpServer, Responder};
use actix_web_lab::sse;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::{ServeArgs, Tick, UserUpdate};

/// A message with the topic it is for.
#[derive(Clone)]
struct Addressed {
    topic: Arc<str>,
    message: String,
}

struct Notifier {
    tx: broadcast::Sender<String>,
    addressed: broadcast::Sender<Addressed>,
}

impl Notifier {
    fn notify(&self, event: &str, data: &impl Serialize) {
        let message = serde_json::json!({ "event": event, "data": data }).to_string();
        // No subscriber is not an error.
        let _ = self.tx.send(message);
    }

    fn notify_topic(&self, topic: String, event: &str, data: &impl Serialize) {
        let message = serde_json::json!({ "event": event, "data": data }).to_string();
        let _ = self.addressed.send(Addressed {
            topic: topic.into(),
            message,
        });
    }
}

async fn events(notifier: web::Data<Notifier>, req: HttpRequest) -> impl Responder {
    let topic = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("topic="))
        .map(str::to_owned);
    let messages = match topic {
        None => BroadcastStream::new(notifier.tx.subscribe())
            .filter_map(|m| ready(m.ok()))
            .left_stream(),
        // Every subscriber sees every message, and drops those for other topics.
        Some(topic) => BroadcastStream::new(notifier.addressed.subscribe())
            .filter_map(move |m| ready(m.ok().filter(|m| *m.topic == *topic).map(|m| m.message)))
            .right_stream(),
    };
    let events = messages.map(|m| Ok::<_, Infallible>(sse::Event::Data(sse::Data::new(m))));
    sse::Sse::from_stream(events).with_keep_alive(Duration::from_secs(5))
}

async fn publish(notifier: web::Data<Notifier>, body: web::Json<Tick>) -> web::Json<Tick> {
    notifier.notify("tick", &*body);
    body
}

async fn update_user(
    notifier: web::Data<Notifier>,
    body: web::Json<UserUpdate>,
) -> web::Json<UserUpdate> {
    notifier.notify_topic(format!("users/{}", body.uid), "user_updated", &*body);
    body
}

pub(super) fn server(
    args: &ServeArgs,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let (tx, _) = broadcast::channel(100);
    let (addressed, _) = broadcast::channel(100);
    let notifier = web::Data::new(Notifier { tx, addressed });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(notifier.clone())
            .app_data(super::json_config())
            .route("/events", web::get().to(events))
            .route("/publish", web::post().to(publish))
            .route("/users", web::post().to(update_user))
    });
    super::bind!(server, args)
}
