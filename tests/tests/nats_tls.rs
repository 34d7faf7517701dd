//! `tls://` NATS URLs (feature `nats`): a private `nats-server -js` that requires TLS, with
//! `test-support`'s test CA and certificate for 127.0.0.1. Its own test binary, because the client
//! trusts the CA through the process-wide `SSL_CERT_FILE`, set once before any connection.
//!
//! async-nats 0.51 (given no CA file or rustls config, as sse-core gives none) builds its
//! rustls roots from `rustls_native_certs::load_native_certs()` on every TLS connection
//! attempt, and that reads only `SSL_CERT_FILE` and `SSL_CERT_DIR` when either is set
//! (a file there it cannot read or parse fails every TLS connection). It checks the certificate
//! against the URL's host: an IP address against the IP SANs, a name against the DNS SANs.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use common::{eventually, serve, SseClient};
use sse_core::Broadcaster;
use test_support::servers::Nats;
use test_support::tls::{TestPki, TlsFiles};

const PATH: &str = "/events";
/// How long an instance that must not get events is watched.
const QUIET: Duration = Duration::from_secs(2);

/// Where the PEM files are while a test uses them, made once with `SSL_CERT_FILE` naming the
/// CA: before any test connects, as every test gets [`Certificates`] first.
fn pki() -> &'static (PathBuf, TestPki) {
    static PKI: OnceLock<(PathBuf, TestPki)> = OnceLock::new();
    PKI.get_or_init(|| {
        let pki = TestPki::new("sse-core NATS test CA");
        let dir = std::env::temp_dir().join(format!("sse-nats-tls-{}", std::process::id()));
        std::env::set_var("SSL_CERT_FILE", TestPki::files(&dir).ca);
        // Read too when set (as it may be, to the system's): the CA alone is trusted here.
        std::env::remove_var("SSL_CERT_DIR");
        (dir, pki)
    })
}

/// Tests using the PEM files now.
static USERS: Mutex<usize> = Mutex::new(0);

/// The PEM files, on disk while one is held: written by the first test to take one, removed
/// by the last to drop its own (even on failure).
struct Certificates {
    dir: &'static Path,
    files: TlsFiles,
}

impl Certificates {
    fn get() -> Certificates {
        let (dir, pki) = pki();
        let mut users = USERS.lock().unwrap_or_else(PoisonError::into_inner);
        let files = if *users == 0 {
            pki.write(dir)
        } else {
            TestPki::files(dir)
        };
        *users += 1;
        Certificates { dir, files }
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(PoisonError::into_inner);
        *users -= 1;
        if *users == 0 {
            let _ = std::fs::remove_dir_all(self.dir);
        }
    }
}

/// The URL of `nats` with another scheme or host (the server listens on 127.0.0.1 only).
fn url(nats: &Nats, scheme: &str, host: &str) -> String {
    format!("{scheme}://{host}:{}", nats.port)
}

/// A stream name no other test (or earlier run) uses.
fn unique_stream(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sse-tls-{test}-{}-{nanos}", std::process::id())
}

fn broadcaster(url: &str, stream: &str) -> Broadcaster {
    Broadcaster::builder()
        .nats(url, stream)
        .expect("valid NATS settings")
        .keep_alive(None)
        .build()
}

/// Whether the instance has read the stream's epoch: its ids then name an entry of the
/// shared stream (`<epoch>-<seq>-<n>`), not its own start (`<epoch>-<n>`).
fn is_connected(events: &Broadcaster) -> bool {
    events.last_event_id().to_string().matches('-').count() == 2
}

async fn connected(events: &Broadcaster) {
    eventually("connected to NATS over TLS", || is_connected(events)).await;
}

/// The epoch of the stream an instance has connected to.
fn epoch(events: &Broadcaster) -> String {
    let id = events.last_event_id().to_string();
    id.split('-').next().expect("an epoch").to_owned()
}

/// An instance that reaches the server but must not connect: it keeps failing and counting,
/// and neither reads the stream nor gets what it publishes into it.
async fn assert_refused(refused: &Broadcaster, what: &str) {
    eventually(what, || refused.stats().engine.errors >= 2).await;
    assert!(!is_connected(refused), "{what}: yet it connected");
    let store = refused.stats().engine;
    assert_eq!(store.reconnects, 0, "{what}: {store:?}");
}

#[actix_web::test]
#[ignore = "needs nats-server"]
async fn events_go_through_a_tls_only_nats_server() {
    let certs = Certificates::get();
    let nats = Nats::start_tls(&certs.files).await;
    let url = url(&nats, "tls", "127.0.0.1");
    let stream = unique_stream("through");
    let a = broadcaster(&url, &stream);
    let b = broadcaster(&url, &stream);
    let server_b = serve(&b, PATH);
    for events in [&a, &b] {
        connected(events).await;
    }
    assert_eq!(epoch(&a), epoch(&b), "one stream, one epoch");

    let mut on_b = SseClient::connect(&server_b.url(PATH), None).await;
    eventually("subscribed", || b.stats().subscribers == 1).await;
    a.publish("e", &7).unwrap();
    let event = on_b.next().await;
    assert_eq!((event.event.as_str(), event.data.as_str()), ("e", "7"));
    // The first message of a new stream, its first event.
    assert_eq!(event.id, format!("{}-1-0", epoch(&a)));
    eventually("acknowledged", || a.stats().engine.outbox == 0).await;
    let (sa, sb) = (a.stats().engine, b.stats().engine);
    assert_eq!(sa.errors + sb.errors, 0, "{sa:?} {sb:?}");
    assert_eq!(sa.outbox_dropped + sb.outbox_dropped, 0, "{sa:?} {sb:?}");
    on_b.assert_quiet(Duration::from_millis(300)).await;
}

#[actix_web::test]
#[ignore = "needs nats-server"]
async fn a_nats_server_whose_certificate_does_not_name_the_host_is_refused() {
    let certs = Certificates::get();
    let nats = Nats::start_tls(&certs.files).await;
    let stream = unique_stream("refused");
    // The server works for a host its certificate names.
    let good = broadcaster(&url(&nats, "tls", "127.0.0.1"), &stream);
    let server_good = serve(&good, PATH);
    connected(&good).await;
    let mut on_good = SseClient::connect(&server_good.url(PATH), None).await;
    eventually("subscribed", || good.stats().subscribers == 1).await;

    // `localhost` is the same server (it resolves to 127.0.0.1 only, where the server
    // listens), but the certificate names the address, not that name.
    assert!(TcpStream::connect(("localhost", nats.port)).is_ok());
    let mismatch = broadcaster(&url(&nats, "tls", "localhost"), &stream);
    // A `nats://` URL does not mean plain text to this server: async-nats upgrades to TLS
    // when the server's INFO requires it (and checks the certificate just the same), so it
    // is refused for the name too. (For a named host, it goes through:
    // `a_nats_url_to_a_tls_only_server_is_upgraded_to_tls`.)
    let plain = broadcaster(&url(&nats, "nats", "localhost"), &stream);
    let servers = [serve(&mismatch, PATH), serve(&plain, PATH)];
    let mut on_mismatch = SseClient::connect(&servers[0].url(PATH), None).await;
    let mut on_plain = SseClient::connect(&servers[1].url(PATH), None).await;
    eventually("subscribed", || {
        mismatch.stats().subscribers == 1 && plain.stats().subscribers == 1
    })
    .await;
    assert_refused(&mismatch, "tls://localhost refused for the name").await;
    assert_refused(&plain, "nats://localhost refused for the name").await;

    // What they publish stays in their outboxes; what is published on the stream does not
    // reach them.
    mismatch.publish("e", "from tls://localhost").unwrap();
    plain.publish("e", "from nats://localhost").unwrap();
    good.publish("e", "from tls://127.0.0.1").unwrap();
    assert_eq!(on_good.next().await.data, r#""from tls://127.0.0.1""#);
    tokio::join!(
        on_good.assert_quiet(QUIET),
        on_mismatch.assert_quiet(QUIET),
        on_plain.assert_quiet(QUIET),
    );
    for refused in [&mismatch, &plain] {
        assert!(!is_connected(refused));
        assert_eq!(refused.stats().engine.outbox, 1);
    }
    assert_eq!(good.stats().engine.errors, 0);
}

#[actix_web::test]
#[ignore = "needs nats-server"]
async fn a_nats_url_to_a_tls_only_server_is_upgraded_to_tls() {
    let certs = Certificates::get();
    let nats = Nats::start_tls(&certs.files).await;
    // The server refuses anything but TLS (its INFO says `tls_required`, checked by
    // `Nats::start_tls`), so any connection that works is TLS: async-nats upgrades a `nats://`
    // connection when the server requires it, checking the certificate as for `tls://`.
    let url = url(&nats, "nats", "127.0.0.1");
    let stream = unique_stream("upgraded");
    let a = broadcaster(&url, &stream);
    let b = broadcaster(&url, &stream);
    let server_b = serve(&b, PATH);
    for events in [&a, &b] {
        connected(events).await;
    }
    let mut on_b = SseClient::connect(&server_b.url(PATH), None).await;
    eventually("subscribed", || b.stats().subscribers == 1).await;
    a.publish("e", &8).unwrap();
    let event = on_b.next().await;
    assert_eq!(event.data, "8");
    assert_eq!(event.id, format!("{}-1-0", epoch(&a)));
    assert_eq!(a.stats().engine.errors + b.stats().engine.errors, 0);
}
