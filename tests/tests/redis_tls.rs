//! `rediss://` (feature `redis-tls`): a private `redis-server` on a TLS port, with the test CA
//! and certificate of `test-support`. Its own test binary, because the client trusts the CA through the
//! process-wide `SSL_CERT_FILE`, set once before any connection.

mod common;

use common::{eventually, serve, SseClient};
use sse_core::Broadcaster;
use test_support::servers::Redis;
use test_support::tls::TestPki;

const PATH: &str = "/events";

fn instance(url: &str, stream: &str) -> (Broadcaster, common::TestServer) {
    let events = Broadcaster::builder()
        .redis(url, stream)
        .expect("valid Redis URL")
        .keep_alive(None)
        .build();
    let server = serve(&events, PATH);
    (events, server)
}

#[actix_web::test]
#[ignore = "needs the redis-server binary (built with TLS, as Debian's is)"]
async fn rediss_urls_connect_over_tls_and_the_certificate_is_checked() {
    let dir = std::env::temp_dir().join(format!("sse-redis-tls-{}", std::process::id()));
    let files = TestPki::new("sse-core Redis test CA").write(&dir);
    // The only test of this binary, before any connection: the client trusts our CA.
    std::env::set_var("SSL_CERT_FILE", &files.ca);
    let redis = Redis::start_tls(&files).await;

    let url = redis.url();
    let (a, _server_a) = instance(&url, "sse-tls:events");
    let (b, server_b) = instance(&url, "sse-tls:events");
    for events in [&a, &b] {
        eventually("connected over TLS", || {
            events.last_event_id().to_string().matches('-').count() == 2
        })
        .await;
    }
    let mut on_b = SseClient::connect(&server_b.url(PATH), None).await;
    eventually("subscribed", || b.stats().subscribers == 1).await;
    a.publish("e", &7).unwrap();
    assert_eq!(on_b.take(1).await[0].data, "7");
    assert_eq!(a.stats().engine.errors + b.stats().engine.errors, 0);

    // The certificate names 127.0.0.1, not 127.0.0.2, where the server listens too.
    assert!(std::net::TcpStream::connect(("127.0.0.2", redis.port)).is_ok());
    let wrong_name = format!("rediss://127.0.0.2:{}", redis.port);
    let (mismatch, _server) = instance(&wrong_name, "sse-tls:events");
    eventually("the certificate is refused for another name", || {
        mismatch.stats().engine.errors >= 2
    })
    .await;
    assert!(mismatch.last_event_id().to_string().matches('-').count() == 1);
    // Plain text to the TLS port does not get through either.
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    let (plain, _server) = instance(&plain, "sse-tls:events");
    eventually("plain text is refused by the TLS port", || {
        plain.stats().engine.errors >= 2
    })
    .await;
    assert!(plain.last_event_id().to_string().matches('-').count() == 1);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
