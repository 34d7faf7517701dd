//! Building a broadcaster inside the `HttpServer::new` closure gives every worker its own, so
//! subscribers on one worker miss events published on another: the README promises a warning.
//! Its own test binary: it installs the process-wide tracing subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

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

#[actix_web::main]
#[test]
async fn a_broadcaster_built_in_the_server_closure_is_warned_about() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

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
