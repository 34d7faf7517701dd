//! `rediss://` (feature `redis-tls`): a private `redis-server` on a TLS port, with a CA and a
//! certificate made here. Its own test binary, because the client trusts the CA through the
//! process-wide `SSL_CERT_FILE`, set once before any connection.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, serve, SseClient, WAIT};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sse_core::Broadcaster;

const PATH: &str = "/events";

/// A `redis-server` with only a TLS port, killed when dropped (even on failure).
struct TlsRedis {
    port: u16,
    child: Child,
}

impl TlsRedis {
    fn start(dir: &Path) -> TlsRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            // 127.0.0.2 (loopback too) is not in the certificate: the name check is tested.
            .args(["--bind", "127.0.0.1", "127.0.0.2"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--tls-cert-file", &file("server.pem")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem")])
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let server = TlsRedis { port, child };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on its TLS port"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `ca.pem`, and `server.pem`/`server.key` for 127.0.0.1 signed by that CA, to `dir`.
fn make_certificates(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sse-core test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).expect("write a PEM file");
    }
}

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
    std::fs::create_dir_all(&dir).expect("temp dir");
    make_certificates(&dir);
    // The only test of this binary, before any connection: the client trusts our CA.
    std::env::set_var("SSL_CERT_FILE", dir.join("ca.pem"));
    let redis = TlsRedis::start(&dir);

    let url = format!("rediss://127.0.0.1:{}", redis.port);
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
