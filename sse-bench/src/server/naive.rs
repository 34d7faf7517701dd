//! The baseline: the hand-made broadcaster found in many actix apps. A global notifier holds a
//! `tokio::sync::broadcast<String>` (capacity 100); handlers wrap their result in
//! `{"event": ..., "data": ...}` and call `notify` by hand; each subscriber turns every message
//! into its own `actix_web_lab::sse::Event` (formatted per subscriber), lagged messages are
//! skipped silently, and the browser reads them with `onmessage`.

use std::convert::Infallible;
use std::future::ready;
use std::time::Duration;

use actix_web::{web, App, HttpServer, Responder};
use actix_web_lab::sse;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::{ServeArgs, Tick};

struct Notifier {
    tx: broadcast::Sender<String>,
}

impl Notifier {
    fn notify(&self, event: &str, data: &impl Serialize) {
        let message = serde_json::json!({ "event": event, "data": data }).to_string();
        // No subscriber is not an error.
        let _ = self.tx.send(message);
    }
}

async fn events(notifier: web::Data<Notifier>) -> impl Responder {
    let messages = BroadcastStream::new(notifier.tx.subscribe())
        .filter_map(|m| ready(m.ok()))
        .map(|m| Ok::<_, Infallible>(sse::Event::Data(sse::Data::new(m))));
    sse::Sse::from_stream(messages).with_keep_alive(Duration::from_secs(5))
}

async fn publish(notifier: web::Data<Notifier>, body: web::Json<Tick>) -> web::Json<Tick> {
    notifier.notify("tick", &*body);
    body
}

pub(super) fn server(
    args: &ServeArgs,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let (tx, _) = broadcast::channel(100);
    let notifier = web::Data::new(Notifier { tx });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(notifier.clone())
            .app_data(super::json_config())
            .route("/events", web::get().to(events))
            .route("/publish", web::post().to(publish))
    });
    super::bind!(server, args)
}
