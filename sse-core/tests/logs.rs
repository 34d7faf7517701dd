//! What sse-core logs, seen by a capturing subscriber: the warnings it promises, and no line
//! per request for what any client can send. Its own test binary: it installs the
//! process-wide tracing subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{App, HttpServer};
use sse_core::Broadcaster;

/// Log lines, as the fmt subscriber writes them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines so far, at INFO and above; one subscriber for every test of this binary.
fn lines() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Lines::default();
        let writer = lines.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .init();
        lines
    })
}

#[actix_web::main]
#[test]
async fn a_broadcaster_built_in_the_server_closure_is_warned_about() {
    let lines = lines();

    let server = HttpServer::new(|| {
        let events = Broadcaster::new(); // the mistake: one per worker
        App::new().configure(events.service("/events"))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind")
    .run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    // The workers build their apps as they start; at most 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let warned = loop {
        let text = String::from_utf8_lossy(&lines.0.lock().expect("not poisoned")).into_owned();
        if text.contains("built on an actix worker thread") {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    handle.stop(false).await;
    let _ = running.await;
    assert!(warned, "no warning about a broadcaster built per worker");
}

#[actix_web::main]
#[test]
async fn bad_last_event_ids_are_summed_up_not_logged_one_by_one() {
    let lines = lines();
    let events = Broadcaster::new();
    let forged = format!("forged-{}", "x".repeat(3000));
    for _ in 0..5 {
        let request = actix_web::test::TestRequest::default()
            .insert_header(("last-event-id", forged.as_str()))
            .to_http_request();
        assert_eq!(events.respond(&request).status(), 200);
    }
    assert_eq!(events.stats().resets, 5);
    let text = String::from_utf8_lossy(&lines.0.lock().expect("not poisoned")).into_owned();
    assert!(
        !text.contains("forged-"),
        "a client's id reached the log:\n{text}"
    );
    let summaries = text
        .matches("could not be resumed since the last summary")
        .count();
    assert_eq!(summaries, 1, "one summary at most a minute:\n{text}");
}
