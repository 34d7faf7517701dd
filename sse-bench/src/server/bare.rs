//! The floor for memory per connection: a bare actix streaming response that sends a comment
//! on connect and a keep-alive every 5 s, and nothing else.

use std::convert::Infallible;
use std::future::ready;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use super::ServeArgs;

async fn events() -> HttpResponse {
    let keep_alive = stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from_static(b": keep-alive\n\n")),
            (),
        ))
    });
    let body = stream::once(ready(Ok(Bytes::from_static(b": connected\n\n")))).chain(keep_alive);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}

pub(super) fn server(
    args: &ServeArgs,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let server = HttpServer::new(|| App::new().route("/events", web::get().to(events)));
    super::bind!(server, args)
}
