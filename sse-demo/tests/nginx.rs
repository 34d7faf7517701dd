//! The demo behind Debian's nginx, configured with `deploy/nginx.conf`: events arrive
//! unbuffered; a client resumes through nginx across a restart of the demo (with a reset
//! alone, with what it missed when the demo shares its stream through Redis); and the
//! per-address limit counts the client that nginx forwards exactly when nginx is trusted, and
//! never an address the client forged; with `--compress`, the page in Chromium gets the gzip
//! stream through nginx, encoded once and live.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;
#[path = "support/e2e.rs"]
#[allow(dead_code)]
mod e2e;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use binary::Demo;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx in the foreground with its own prefix, pid and logs in a temp dir; killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Runs `deploy/nginx.conf` in front of `upstream`, on a free loopback port.
    fn start(upstream: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = free_port();
        let conf = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf"),
        )
        .expect("read deploy/nginx.conf");
        let d = dir.path().display();
        let conf = conf
            .replace("server 127.0.0.1:2345;", &format!("server {upstream};"))
            .replace("listen 8080;", &format!("listen {addr};"))
            .replace(
                "events {}",
                &format!("pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{}}"),
            )
            .replace(
                "http {",
                &format!(
                    "http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    \
                     proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
                     uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;"
                ),
            );
        // As root, nginx's workers would run as `nobody`, which cannot use the temp dir.
        let conf = if is_root() {
            format!("user root;\n{conf}")
        } else {
            conf
        };
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf).expect("write nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&file)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("run nginx (apt-get install nginx)");
        let nginx = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx not listening: {}",
                nginx.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master's SIGKILL leaves its workers; SIGQUIT first, as `nginx -s quit` would.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A raw HTTP/1.1 response read as it arrives.
struct Raw {
    stream: TcpStream,
    text: String,
}

impl Raw {
    fn get(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        Raw::send(stream, addr, path, &resume)
    }

    /// A stream request from the loopback address `from`, with `headers` (each ending in
    /// CRLF): to nginx, another client.
    fn get_from(from: Ipv4Addr, addr: SocketAddr, path: &str, headers: &str) -> Raw {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let stream = runtime
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::from((from, 0)))?;
                socket.connect(addr).await?.into_std()
            })
            .expect("connect");
        stream.set_nonblocking(false).expect("blocking socket");
        Raw::send(stream, addr, path, headers)
    }

    fn send(mut stream: TcpStream, addr: SocketAddr, path: &str, headers: &str) -> Raw {
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{headers}\r\n"
        )
        .expect("send");
        Raw {
            stream,
            text: String::new(),
        }
    }

    /// Reads until `needle` arrives; when, or None after `within`.
    fn wait_for(&mut self, needle: &str, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        let mut buf = [0; 4096];
        while !self.text.contains(needle) {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        Some(Instant::now())
    }

    fn status(&mut self) -> u16 {
        self.wait_for("\r\n", Duration::from_secs(5));
        (self.text.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The id of the event whose frame holds `needle` (already read).
    fn id_of(&self, needle: &str) -> String {
        let at = self.text.find(needle).expect("the event was read");
        let start = self.text[..at]
            .rfind("\nid: ")
            .expect("an id line before it")
            + 5;
        let end = self.text[start..].find('\n').expect("end of line") + start;
        self.text[start..end].trim().to_owned()
    }
}

/// Creates a user directly on the demo; when the request was sent.
fn create_user(addr: SocketAddr, name: &str) -> Instant {
    let body = format!(r#"{{"username":"{name}","email":"{name}@example.com"}}"#);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let sent = Instant::now();
    write!(
        stream,
        "POST /api/v1/users HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    sent
}

#[test]
#[ignore = "needs nginx (apt-get install nginx)"]
fn events_arrive_through_nginx_unbuffered() {
    let db = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start(db.path().join("demo.db"), 0);
    let nginx = Nginx::start(demo.addr);

    let mut stream = Raw::get(nginx.addr, "/api/sse/stream", None);
    assert_eq!(stream.status(), 200, "{}", stream.text);
    // A buffering proxy would hold these few bytes back.
    assert!(
        stream
            .wait_for(": connected", Duration::from_secs(2))
            .is_some(),
        "no preamble through nginx: {}\n{}",
        stream.text,
        nginx.log()
    );
    let head = stream.text.to_ascii_lowercase();
    assert!(
        head.contains("cache-control: no-cache, no-transform"),
        "{head}"
    );
    for i in 0..5 {
        let name = format!("nginx{i}");
        let sent = create_user(demo.addr, &name);
        let got = stream
            .wait_for(&format!(r#""username":"{name}""#), Duration::from_secs(2))
            .unwrap_or_else(|| panic!("event {i} not through nginx: {}", stream.text));
        let took = got - sent;
        println!("MEASURE nginx_event_latency_ms {}", took.as_millis());
        assert!(took < Duration::from_millis(500), "event {i} took {took:?}");
    }
    let page = Raw::get(nginx.addr, "/api/sse/stream/client.js", None).status();
    assert_eq!(page, 200);
}

#[test]
#[ignore = "needs nginx, chromium and node_modules in sse-demo/e2e (see .ci/run)"]
fn with_compress_the_page_receives_gzip_events_through_nginx_live() {
    let db = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start_with(db.path().join("demo.db"), 0, &["--compress"]);
    let nginx = Nginx::start(demo.addr);
    let url = format!("http://{}/", nginx.addr);
    // The script checks that the stream's Content-Encoding is `gzip` (once: not encoded again
    // by nginx) and that each change shows on the page within 2 s.
    let out = e2e::run("gzip.mjs", &[&url], Duration::from_secs(90));
    let shown: u64 = e2e::measure(&out, "shown_ms").parse().expect("a number");
    // Unbuffered: a buffering proxy would hold the small gzip parts back.
    assert!(shown < 2000, "{out:?}\n{}", nginx.log());
}

/// Starts the demo on `db` with `args` behind nginx, reads one event (a user "before")
/// through nginx, and stops the demo: nginx, the demo's port, and that event's id.
fn one_event_then_stopped(db: &Path, args: &[&str]) -> (Nginx, u16, String) {
    let demo = Demo::start_with(db, 0, args);
    let (port, upstream) = (demo.addr.port(), demo.addr);
    let nginx = Nginx::start(upstream);
    let mut stream = Raw::get(nginx.addr, "/api/sse/stream", None);
    assert_eq!(stream.status(), 200);
    // With an engine, the demo connects to it in the background: its first event may wait in
    // the outbox.
    create_user(upstream, "before");
    stream
        .wait_for(r#""username":"before""#, Duration::from_secs(10))
        .expect("event before the restart");
    let last = stream.id_of(r#""username":"before""#);
    drop(stream);
    demo.stop(Duration::from_secs(5));
    (nginx, port, last)
}

/// The stream through `nginx`, resuming after `last`, once the demo behind it answers again
/// (tries for 15 s, as a client's reconnects would).
fn resume_through(nginx: &Nginx, last: &str) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut attempt = Raw::get(nginx.addr, "/api/sse/stream", Some(last));
        if attempt.status() == 200 {
            return attempt;
        }
        assert!(
            Instant::now() < deadline,
            "no stream through nginx after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs nginx (apt-get install nginx)"]
fn a_client_resumes_through_nginx_across_a_demo_restart() {
    let db = tempfile::tempdir().expect("temp dir");
    let db = db.path().join("demo.db");
    let (nginx, port, last) = one_event_then_stopped(&db, &[]);

    // While the demo is down nginx answers 502; the client keeps trying (bounded here).
    let down = Raw::get(nginx.addr, "/api/sse/stream", Some(&last)).status();
    assert_eq!(down, 502);
    let demo = Demo::start(&db, port);
    let mut resumed = resume_through(&nginx, &last);
    // The history lives in the database with its epoch: the client resumes where it was,
    // without a reset, and gets live events.
    create_user(demo.addr, "after");
    assert!(
        resumed
            .wait_for(r#""username":"after""#, Duration::from_secs(2))
            .is_some(),
        "{}",
        resumed.text
    );
    assert!(
        !resumed.text.contains("event: sse-reset"),
        "{}",
        resumed.text
    );
}

#[test]
#[ignore = "needs nginx and Redis on 127.0.0.1:6379 (started by .ci/run)"]
fn with_redis_a_client_resumes_through_nginx_across_a_demo_restart_with_what_it_missed() {
    let db = tempfile::tempdir().expect("temp dir");
    let db = db.path().join("demo.db");
    let stream_key = format!("sse-demo-nginx-test:{}", std::process::id());
    let args = [
        "--redis",
        "redis://127.0.0.1:6379",
        "--redis-stream",
        &stream_key,
    ];
    let (nginx, port, last) = one_event_then_stopped(&db, &args);

    // A change made while the client is away, on the restarted demo.
    let demo = Demo::start_with(&db, port, &args);
    create_user(demo.addr, "during");
    let mut resumed = resume_through(&nginx, &last);
    // The stream's epoch lives in Redis, so the new process resumes the client where it was:
    // the missed change comes, and no reset.
    assert!(
        resumed
            .wait_for(r#""username":"during""#, Duration::from_secs(10))
            .is_some(),
        "{}",
        resumed.text
    );
    assert!(!resumed.text.contains("sse-reset"), "{}", resumed.text);
    assert!(
        !resumed.text.contains(r#""username":"before""#),
        "{}",
        resumed.text
    );
}

#[test]
#[ignore = "needs nginx (apt-get install nginx)"]
fn behind_nginx_the_per_address_limit_counts_the_client_nginx_names_when_it_is_trusted() {
    let db = tempfile::tempdir().expect("temp dir");
    let db = db.path().join("demo.db");
    let limit = ["--max-subscribers-per-ip", "1"];
    let trusting = [&limit[..], &["--trusted-proxy", "127.0.0.1"]].concat();
    let path = "/api/sse/stream";
    let (client_a, client_b) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));

    // nginx (on 127.0.0.1) trusted: each client is counted by the address nginx forwards.
    let demo = Demo::start_with(&db, 0, &trusting);
    let nginx = Nginx::start(demo.addr);
    let mut a = Raw::get_from(client_a, nginx.addr, path, "");
    assert_eq!(a.status(), 200);
    let mut b = Raw::get_from(client_b, nginx.addr, path, "");
    assert_eq!(b.status(), 200, "another client: {}", b.text);
    // A second stream of the first client is over its limit, whatever it claims to be: nginx
    // appends the address it saw, and that is the one counted.
    let spoofed = "X-Forwarded-For: 198.51.100.7\r\n";
    let mut again = Raw::get_from(client_a, nginx.addr, path, spoofed);
    assert_eq!(again.status(), 503, "{}", again.text);
    drop((a, b, again, nginx));
    demo.stop(Duration::from_secs(5));

    // Not trusted: every client is nginx itself, so the second client is refused.
    let demo = Demo::start_with(&db, 0, &limit);
    let nginx = Nginx::start(demo.addr);
    let mut a = Raw::get_from(client_a, nginx.addr, path, "");
    assert_eq!(a.status(), 200);
    let mut b = Raw::get_from(client_b, nginx.addr, path, "");
    assert_eq!(b.status(), 503, "{}", b.text);
}

/// Opens three streams at once from one client through nginx, each with its own `header`
/// line (one forged client address each), and stops the demo: their statuses, sorted (which
/// request the demo sees first is a race).
fn three_forged_streams(db: &Path, args: &[&str], header: fn(u8) -> String) -> Vec<u16> {
    let demo = Demo::start_with(db, 0, args);
    let nginx = Nginx::start(demo.addr);
    let client = Ipv4Addr::new(127, 0, 0, 2);
    let mut streams: Vec<Raw> = (1..=3)
        .map(|n| Raw::get_from(client, nginx.addr, "/api/sse/stream", &header(n)))
        .collect();
    let mut statuses: Vec<u16> = streams.iter_mut().map(Raw::status).collect();
    statuses.sort_unstable();
    drop((streams, nginx));
    demo.stop(Duration::from_secs(5));
    statuses
}

#[test]
#[ignore = "needs nginx (apt-get install nginx)"]
fn behind_nginx_a_client_cannot_choose_the_address_it_is_counted_under() {
    let db = tempfile::tempdir().expect("temp dir");
    let db = db.path().join("demo.db");
    let trusting = [
        "--max-subscribers-per-ip",
        "1",
        "--trusted-proxy",
        "127.0.0.1",
    ];
    let forged_forwarded: fn(u8) -> String = |n| format!("Forwarded: for=198.51.100.{n}\r\n");
    let forged_xff: fn(u8) -> String = |n| format!("X-Forwarded-For: 198.51.100.{n}\r\n");
    for (what, header) in [
        ("Forwarded", forged_forwarded),
        ("X-Forwarded-For", forged_xff),
    ] {
        let statuses = three_forged_streams(&db, &trusting, header);
        assert_eq!(
            statuses,
            [200, 503, 503],
            "three streams of one client, each with a forged {what}"
        );
    }
    // An app told to read `Forwarded` behind the shipped config: nginx drops the client's, so
    // every client is nginx itself, never the address a client claims.
    let reading_forwarded = [&trusting[..], &["--forwarded-header", "forwarded"]].concat();
    let statuses = three_forged_streams(&db, &reading_forwarded, forged_forwarded);
    assert_eq!(statuses, [200, 503, 503], "forged Forwarded, read");
}
