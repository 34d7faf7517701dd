//! `sse-bench mercure`: what the Mercure protocol layer adds to a publish. One server process
//! (pinned like the other presets' servers, one actix worker) has one broadcaster and two
//! ways to publish the same event to it:
//!
//! - `POST /emit`: an `#[emit_event("tick", topic = "bench")]` handler answering its JSON body,
//!   the application's own path;
//! - `POST /.well-known/mercure`: the hub, a form (`topic`, `type`, `data`) with a publisher
//!   token in `Authorization: Bearer`, verified on every publish as a hub does, the id
//!   chosen by the hub (`urn:uuid:`), as most publishers leave it.
//!
//! Both events carry the same data bytes (the JSON the handler answers is what the form's
//! `data` holds), the same name and the same topic (`https://bench.example/bench` is `bench`
//! under the hub's base IRI). Subscribers listen on both endpoints at once: half on
//! `/events?topic=bench`, half on the hub's `GET`; every one receives every event of both
//! paths.
//!
//! The paths take turns in rounds (the order alternating), each first at a fixed rate over
//! keep-alive connections (request latency and publish-to-delivery latency at the
//! subscribers, both from the write of the request, the server's CPU from `/proc`), then as a
//! burst (the same connections posting back to back: answered publishes per second, and how
//! fast every subscriber had them all). With `--subs 0` the CPU and the burst are the publish
//! path's alone. A phase ends when every subscriber has its events (or nothing
//! arrived for 3 s), so each phase's CPU holds its deliveries and nothing of the next.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::web::{self, Json};
use actix_web::{App, HttpServer};
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use sse_core::mercure::{JwtKey, Mercure};
use sse_core::{emit_event, Broadcaster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{parse_head, Body};
use crate::procfs;
use crate::sse::{Item, Parser};
use crate::stats::{find_probe, probe, Histogram, SeqTally, PROBE_PREFIX};

/// The publisher key of the hub (HS256), as the reference hub's `publisher_jwt`.
const SECRET: &[u8] = b"sse-bench mercure publisher key, at least 256 bits";
/// The hub's base IRI: the Mercure topic `{BASE}bench` is the application's topic `bench`.
const BASE: &str = "https://bench.example/";
/// The topic both paths publish to and every subscriber listens on.
const TOPIC: &str = "bench";

/// Options of the `mercure` command.
#[derive(Debug, clap::Args)]
pub struct MercureArgs {
    /// Subscribers, half on the stream endpoint and half on the hub.
    #[arg(long, default_value_t = 100)]
    subs: usize,
    /// Publishes per second in the steady phases, over all publishing connections.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds of each steady phase.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Publishes of each burst phase, sent back to back.
    #[arg(long, default_value_t = 5000)]
    burst: u64,
    /// Keep-alive publishing connections (K), in both phases.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Rounds of (annotation, Mercure), the order alternating.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Bytes of each event's data (the JSON of the probe and a filler).
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
}

/// Options of the server process (`serve-mercure`, started by `mercure`).
#[derive(Debug, clap::Args)]
pub struct ServeMercureArgs {}

/// The annotated handler's body and answer, which is the event: `{"probe":..,"pad":..}`.
#[derive(Debug, Serialize, Deserialize)]
struct Tick {
    probe: String,
    pad: String,
}

/// The application's path: the body answered and published as `tick` to `bench`.
#[emit_event("tick", topic = "bench")]
async fn annotated(body: Json<Tick>) -> Json<Tick> {
    body
}

/// Runs the server of the `mercure` preset: prints `listening on <addr>`, exits when stdin
/// ends.
pub fn serve(_args: ServeMercureArgs) -> std::io::Result<()> {
    procfs::raise_nofile_limit();
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    actix_web::rt::System::new().block_on(async move {
        let events = Broadcaster::builder().keep_alive(None).build();
        let hub = Mercure::new()
            .publisher_key(JwtKey::hs256(SECRET))
            .anonymous(true)
            .base_iri(BASE);
        let server = HttpServer::new(move || {
            App::new()
                .configure(events.service("/events"))
                .configure(events.mercure(hub.clone()))
                .route("/emit", web::post().to(annotated))
        })
        .workers(1)
        .backlog(1024)
        .bind(("127.0.0.1", 0))?;
        let addr = server.addrs()[0];
        println!("listening on {addr}");
        server.run().await
    })
}

/// A way to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `POST /emit`, `#[emit_event]`.
    Annotation,
    /// `POST /.well-known/mercure`.
    Mercure,
}

impl Path {
    const BOTH: [Path; 2] = [Path::Annotation, Path::Mercure];

    fn label(self) -> &'static str {
        match self {
            Path::Annotation => "`#[emit_event]` (`POST /emit`)",
            Path::Mercure => "Mercure (`POST /.well-known/mercure`)",
        }
    }
}

/// A subscriber's endpoint.
const ENDPOINTS: [&str; 2] = ["/events", "/.well-known/mercure"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// At `--rate` for `--seconds`.
    Steady,
    /// `--burst` publishes back to back.
    Burst,
    /// Not counted: connections, allocations and caches of both paths warmed.
    WarmUp,
}

/// One phase of the run, planned before it starts: its events are numbered
/// `first..first + count`, so a subscriber knows each event's phase by its number.
#[derive(Clone, Debug)]
struct Phase {
    path: Path,
    pace: Pace,
    first: u64,
    count: u64,
}

/// What one phase measured on the publishing side.
#[derive(Debug, Default)]
struct Published {
    ok: u64,
    failed: u64,
    /// Request latency, µs, from the write of the request to its answer.
    latency: Histogram,
    /// How late each request was written after it was due, µs (steady phases).
    late: Histogram,
    /// From the first request to the last answer.
    publish_secs: f64,
    /// From the first request to the last delivery to the last subscriber.
    delivered_secs: f64,
    /// Server CPU over the phase and its deliveries.
    cpu_secs: f64,
}

/// What the subscribers saw, per phase and endpoint.
#[derive(Debug, Default)]
struct Seen {
    latency: Vec<[Histogram; 2]>,
    delivered: Vec<[u64; 2]>,
    data_bytes: Vec<[u64; 2]>,
    duplicates: u64,
    foreign: u64,
    resets: u64,
    errors: Vec<String>,
}

/// The subscribers, read on one thread of their own (`bench-sub`).
struct Subscribers {
    seen: Arc<Mutex<Seen>>,
    /// First deliveries per phase, over all subscribers.
    progress: Arc<Vec<AtomicU64>>,
    connected: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Subscribers {
    fn start(
        addr: SocketAddr,
        subs: usize,
        phases: &[Phase],
        origin: Instant,
    ) -> Result<Self, String> {
        let seen = Arc::new(Mutex::new(Seen {
            latency: vec![Default::default(); phases.len()],
            delivered: vec![[0; 2]; phases.len()],
            data_bytes: vec![[0; 2]; phases.len()],
            ..Seen::default()
        }));
        let progress: Arc<Vec<AtomicU64>> =
            Arc::new(phases.iter().map(|_| AtomicU64::new(0)).collect());
        let connected = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let firsts: Vec<u64> = phases.iter().map(|p| p.first).collect();
        let steady: Vec<bool> = phases.iter().map(|p| p.pace == Pace::Steady).collect();
        let (seen2, progress2, connected2, done2) = (
            seen.clone(),
            progress.clone(),
            connected.clone(),
            done.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("bench-sub".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let shared = Rc::new(Reader {
                    firsts,
                    steady,
                    origin,
                    seen: seen2,
                    progress: progress2,
                    connected: connected2,
                    finder: Finder::new(PROBE_PREFIX),
                });
                let local = tokio::task::LocalSet::new();
                for i in 0..subs {
                    let endpoint = i % 2;
                    local.spawn_local(subscribe(shared.clone(), addr, endpoint));
                }
                local.block_on(&rt, async {
                    while !done2.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(Subscribers {
            seen,
            progress,
            connected,
            done,
            thread,
        })
    }

    fn stop(self) -> Seen {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What the subscriber connections of the reading thread share.
struct Reader {
    firsts: Vec<u64>,
    steady: Vec<bool>,
    origin: Instant,
    seen: Arc<Mutex<Seen>>,
    progress: Arc<Vec<AtomicU64>>,
    connected: Arc<AtomicUsize>,
    finder: Finder<'static>,
}

/// One subscriber on `ENDPOINTS[endpoint]`, reading until the run ends.
async fn subscribe(reader: Rc<Reader>, addr: SocketAddr, endpoint: usize) {
    if let Err(err) = read_stream(&reader, addr, endpoint).await {
        let mut seen = reader.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.errors.push(format!("{}: {err}", ENDPOINTS[endpoint]));
    }
}

async fn read_stream(reader: &Reader, addr: SocketAddr, endpoint: usize) -> Result<(), String> {
    let query = if endpoint == 0 {
        TOPIC.to_owned()
    } else {
        form_encode(&format!("{BASE}{TOPIC}"))
    };
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {}?topic={query} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
        ENDPOINTS[endpoint]
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head_buf = Vec::new();
    let (head, head_len) = loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        head_buf.extend_from_slice(&buf[..n]);
        if let Some(parsed) = parse_head(&head_buf).map_err(|e| e.to_string())? {
            break parsed;
        }
    };
    if head.status != 200 {
        return Err(format!("status {}", head.status));
    }
    reader.connected.fetch_add(1, Ordering::Relaxed);
    let mut body = Body::new(head.body);
    let mut parser = Parser::new();
    let mut tally = SeqTally::default();
    let mut feed = |bytes: &[u8]| -> Result<(), String> {
        let now = reader.origin.elapsed().as_micros() as u64;
        let mut seen = reader.seen.lock().unwrap_or_else(PoisonError::into_inner);
        body.feed(bytes, |chunk| {
            parser.feed(chunk, |item| {
                let Item::Event { event, data, .. } = item else {
                    return;
                };
                if event == sse_core::RESET_EVENT.as_bytes() {
                    seen.resets += 1;
                    return;
                }
                let Some((seq, sent)) = find_probe(&reader.finder, data) else {
                    seen.foreign += 1;
                    return;
                };
                if !tally.record(seq) {
                    seen.duplicates += 1;
                    return;
                }
                let phase = reader
                    .firsts
                    .partition_point(|&f| f <= seq)
                    .saturating_sub(1);
                seen.delivered[phase][endpoint] += 1;
                seen.data_bytes[phase][endpoint] += data.len() as u64;
                if reader.steady[phase] {
                    seen.latency[phase][endpoint].record(now.saturating_sub(sent));
                }
                reader.progress[phase].fetch_add(1, Ordering::Relaxed);
            });
        })
        .map(drop)
        .map_err(|e| e.to_string())
    };
    feed(&head_buf[head_len..])?;
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the stream".into());
        }
        feed(&buf[..n])?;
    }
}

/// `application/x-www-form-urlencoded` of `s`: unreserved bytes as they are, others `%XX`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The event's data, `payload_bytes` long (or the probe's length, if longer).
fn event_data(seq: u64, sent_us: u64, payload_bytes: usize) -> String {
    let probe = probe(seq, sent_us);
    let bare = r#"{"probe":"","pad":""}"#.len() + probe.len();
    let pad = "x".repeat(payload_bytes.saturating_sub(bare));
    serde_json::to_string(&Tick { probe, pad }).unwrap_or_default()
}

/// The publisher's token: `{"mercure":{"publish":["*"]}}`, valid for an hour.
fn publisher_token() -> Result<String, String> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "exp": exp, "mercure": { "publish": ["*"] } }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .map_err(|e| e.to_string())
}

/// The request publishing event `seq` on `path`.
fn request(path: Path, seq: u64, sent_us: u64, payload_bytes: usize, token: &str) -> String {
    let data = event_data(seq, sent_us, payload_bytes);
    match path {
        Path::Annotation => format!(
            "POST /emit HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{data}",
            data.len()
        ),
        Path::Mercure => {
            let form = format!(
                "topic={}&type=tick&data={}",
                form_encode(&format!("{BASE}{TOPIC}")),
                form_encode(&data)
            );
            format!(
                "POST /.well-known/mercure HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            )
        }
    }
}

/// The settings every publishing connection shares.
#[derive(Clone)]
struct Load {
    addr: SocketAddr,
    token: Arc<str>,
    payload_bytes: usize,
    conns: usize,
    origin: Instant,
}

/// Publishes the phase's events: steady at `rate` (each connection its share, evenly
/// spaced), or back to back. Answered, failed, request latency, seconds to the last answer.
async fn publish(load: &Load, phase: &Phase, rate: f64) -> Result<Published, String> {
    let interval = Duration::from_secs_f64(load.conns as f64 / rate.max(1.0));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    // Steady: connection c sends every conns-th event, each when it is due. Burst: the next
    // event not yet taken, as soon as the previous answer arrives.
    let next = Rc::new(std::cell::Cell::new(phase.first));
    let (first, end) = (phase.first, phase.first + phase.count);
    let mut tasks = Vec::new();
    let local = tokio::task::LocalSet::new();
    for c in 0..load.conns {
        let (load, next, pace, path) = (load.clone(), next.clone(), phase.pace, phase.path);
        tasks.push(local.spawn_local(async move {
            let mut stream = tokio::net::TcpStream::connect(load.addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut out = Published::default();
            let mut buf = vec![0u8; 16 * 1024];
            let offset = interval.mul_f64(c as f64 / load.conns as f64);
            tokio::time::sleep_until(start).await;
            for k in 0u32.. {
                let seq = match pace {
                    Pace::Steady | Pace::WarmUp => {
                        let seq = first + c as u64 + u64::from(k) * load.conns as u64;
                        if seq >= end {
                            break;
                        }
                        seq
                    }
                    Pace::Burst => {
                        let seq = next.get();
                        if seq >= end {
                            break;
                        }
                        next.set(seq + 1);
                        seq
                    }
                };
                let due = match pace {
                    // No sleep: even an instant already past waits for the timer's next tick.
                    Pace::Burst => tokio::time::Instant::now(),
                    _ => {
                        let due = start + offset + interval * k;
                        tokio::time::sleep_until(due).await;
                        due
                    }
                };
                // Latencies count from the write: the timer wakes up to a millisecond late,
                // which would blur what the two paths differ by. How late is kept apart.
                let sent = tokio::time::Instant::now();
                out.late
                    .record(sent.saturating_duration_since(due).as_micros() as u64);
                let sent_us = sent.into_std().saturating_duration_since(load.origin);
                let request = request(
                    path,
                    seq,
                    sent_us.as_micros() as u64,
                    load.payload_bytes,
                    &load.token,
                );
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let status = crate::tx::read_response(&mut stream, &mut buf).await?;
                out.latency.record(sent.elapsed().as_micros() as u64);
                if status == 200 {
                    out.ok += 1;
                } else {
                    out.failed += 1;
                }
            }
            Ok::<_, String>(out)
        }));
    }
    let mut total = Published::default();
    local
        .run_until(async {
            for t in tasks {
                let p = t.await.map_err(|e| e.to_string())??;
                total.ok += p.ok;
                total.failed += p.failed;
                total.latency.merge(&p.latency);
                total.late.merge(&p.late);
            }
            Ok::<_, String>(())
        })
        .await?;
    total.publish_secs = start.elapsed().as_secs_f64();
    Ok(total)
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    pinned: bool,
}

impl Server {
    fn start() -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let pinned = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
            && procfs::have_taskset();
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let (child, addr) = crate::server::spawn_listening(cmd.arg("serve-mercure"))?;
        Ok(Server {
            child,
            addr,
            pinned,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The phases of the run: a warm-up of each path, then the rounds.
fn plan(args: &MercureArgs) -> Vec<Phase> {
    let steady = (args.rate * args.seconds).round().max(1.0) as u64;
    let warm = (args.rate * 0.5).round().max(1.0) as u64;
    let mut phases = Vec::new();
    let mut first = 1;
    let mut add = |path, pace, count| {
        phases.push(Phase {
            path,
            pace,
            first,
            count,
        });
        first += count;
    };
    for path in Path::BOTH {
        add(path, Pace::WarmUp, warm);
    }
    for round in 0..args.rounds {
        let mut order = Path::BOTH;
        if round % 2 == 1 {
            order.reverse();
        }
        for path in order {
            add(path, Pace::Steady, steady);
            add(path, Pace::Burst, args.burst.max(1));
        }
    }
    phases
}

/// Waits until the phase's `expected` deliveries have all arrived, or none arrived for 3 s,
/// or 60 s passed; returns when the last one did.
fn wait_delivered(progress: &AtomicU64, expected: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut moved) = (progress.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            (last, moved) = (now, Instant::now());
        }
        if now >= expected || Instant::now() > deadline || moved.elapsed() > Duration::from_secs(3)
        {
            return moved;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs the preset and prints its tables; fails on a lost event or a refused publish.
pub fn main(args: &MercureArgs) -> std::process::ExitCode {
    match measure(args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("mercure: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn measure(args: &MercureArgs) -> Result<bool, String> {
    procfs::raise_nofile_limit();
    println!("$ {}", procfs::command_line());
    println!(
        "machine: {}, {} cores, load average {} at the start",
        procfs::cpu_model(),
        std::thread::available_parallelism().map_or(1, usize::from),
        procfs::load_average().map_or("?".into(), |l| format!("{l:.2}")),
    );
    let server = Server::start()?;
    let pid = server.child.id();
    let phases = plan(args);
    let origin = Instant::now();
    let subs = Subscribers::start(server.addr, args.subs, &phases, origin)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while subs.connected.load(Ordering::Relaxed) < args.subs {
        if Instant::now() > deadline {
            let seen = subs.stop();
            return Err(format!(
                "subscribers did not connect: {:?}",
                seen.errors.first()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let load = Load {
        addr: server.addr,
        token: publisher_token()?.into(),
        payload_bytes: args.payload_bytes,
        conns: args.concurrency.max(1),
        origin,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for (i, phase) in phases.iter().enumerate() {
        let cpu0 = procfs::sample(pid).map_or(0.0, |s| s.cpu_secs);
        let started = Instant::now();
        let mut p = rt.block_on(publish(&load, phase, args.rate))?;
        let last = wait_delivered(&subs.progress[i], p.ok * args.subs as u64);
        p.delivered_secs = last.saturating_duration_since(started).as_secs_f64();
        p.cpu_secs = procfs::sample(pid).map_or(0.0, |s| s.cpu_secs) - cpu0;
        results.push(p);
    }
    let seen = subs.stop();
    let server_pinned = server.pinned;
    drop(server);
    Ok(report(args, &phases, &results, &seen, &load, server_pinned))
}

/// One path's figures over its phases.
#[derive(Default)]
struct Figures {
    published: u64,
    failed: u64,
    request: Histogram,
    late: Histogram,
    delivery: Histogram,
    by_endpoint: [Histogram; 2],
    steady_cpu: f64,
    steady_ok: u64,
    burst_ok: u64,
    burst_publish_secs: f64,
    burst_delivered_secs: f64,
    burst_cpu: f64,
    delivered: u64,
    data_bytes: u64,
}

fn report(
    args: &MercureArgs,
    phases: &[Phase],
    results: &[Published],
    seen: &Seen,
    load: &Load,
    pinned: bool,
) -> bool {
    let subs = args.subs as u64;
    let figures = Path::BOTH.map(|path| {
        let mut f = Figures::default();
        for (i, (phase, p)) in phases.iter().zip(results).enumerate() {
            if phase.path != path || phase.pace == Pace::WarmUp {
                continue;
            }
            f.published += p.ok;
            f.failed += p.failed;
            f.delivered += seen.delivered[i].iter().sum::<u64>();
            f.data_bytes += seen.data_bytes[i].iter().sum::<u64>();
            match phase.pace {
                Pace::Steady => {
                    f.request.merge(&p.latency);
                    f.late.merge(&p.late);
                    for (e, h) in seen.latency[i].iter().enumerate() {
                        f.delivery.merge(h);
                        f.by_endpoint[e].merge(h);
                    }
                    f.steady_cpu += p.cpu_secs;
                    f.steady_ok += p.ok;
                }
                Pace::Burst => {
                    f.burst_ok += p.ok;
                    f.burst_publish_secs += p.publish_secs;
                    f.burst_delivered_secs += p.delivered_secs;
                    f.burst_cpu += p.cpu_secs;
                }
                Pace::WarmUp => {}
            }
        }
        f
    });
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "\n== {} subscribers ({} on /events?topic={TOPIC}, {} on the hub), {} B of data per event; \
         steady {} publishes/s for {} s, burst {} publishes; {} publishing connections; {} rounds; \
         server {} (1 actix worker)",
        args.subs,
        args.subs.div_ceil(2),
        args.subs / 2,
        args.payload_bytes,
        args.rate,
        args.seconds,
        args.burst,
        load.conns,
        args.rounds,
        if pinned {
            "pinned to CPU 0"
        } else {
            "not pinned"
        },
    );
    for path in Path::BOTH {
        let r = request(path, 1, 1, args.payload_bytes, &load.token);
        println!("{}: request {} B", path.label(), r.len());
    }
    println!(
        "| path | published | publish p50 ms | publish p99 ms | delivery p50 ms | delivery p99 ms \
         | server CPU µs / publish | server CPU µs / delivery | burst publishes/s | burst delivered ev/s \
         | burst CPU µs / publish | delivered / expected | lost |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut clean = seen.errors.is_empty() && seen.duplicates == 0 && seen.resets == 0;
    for (path, f) in Path::BOTH.iter().zip(&figures) {
        let expected = f.published * subs;
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {:.0} | {} | {:.1} | {} / {} | {} |",
            path.label(),
            f.published,
            ms(f.request.quantile(0.5)),
            ms(f.request.quantile(0.99)),
            ms(f.delivery.quantile(0.5)),
            ms(f.delivery.quantile(0.99)),
            f.steady_cpu * 1e6 / f.steady_ok.max(1) as f64,
            per_delivery(f.steady_cpu, f.steady_ok * subs),
            f.burst_ok as f64 / f.burst_publish_secs.max(1e-9),
            if subs == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}", f.burst_ok as f64 / f.burst_delivered_secs.max(1e-9))
            },
            f.burst_cpu * 1e6 / f.burst_ok.max(1) as f64,
            f.delivered,
            expected,
            expected.saturating_sub(f.delivered),
        );
        clean &= f.failed == 0 && f.delivered == expected;
    }
    println!("\ndelivery latency by subscriber endpoint (steady phases), p50 / p99 ms:");
    println!("| path | {} | {} |", ENDPOINTS[0], ENDPOINTS[1]);
    println!("| --- | ---: | ---: |");
    for (path, f) in Path::BOTH.iter().zip(&figures) {
        let [a, b] = &f.by_endpoint;
        println!(
            "| {} | {:.2} / {:.2} | {:.2} / {:.2} |",
            path.label(),
            ms(a.quantile(0.5)),
            ms(a.quantile(0.99)),
            ms(b.quantile(0.5)),
            ms(b.quantile(0.99)),
        );
    }
    let [a, m] = &figures;
    let ratio = |x: f64, y: f64| x / y.max(1e-9);
    let q = |h: &Histogram, p| h.quantile(p) as f64;
    println!(
        "\nMercure / annotation: publish p50 {:.2}×, p99 {:.2}×; delivery p50 {:.2}×, p99 {:.2}×; \
         CPU per publish {:.2}× steady, {:.2}× burst; burst publishes/s {:.2}×; \
         data bytes per delivery {:.1} / {:.1}",
        ratio(q(&m.request, 0.5), q(&a.request, 0.5)),
        ratio(q(&m.request, 0.99), q(&a.request, 0.99)),
        ratio(q(&m.delivery, 0.5), q(&a.delivery, 0.5)),
        ratio(q(&m.delivery, 0.99), q(&a.delivery, 0.99)),
        ratio(
            m.steady_cpu / m.steady_ok.max(1) as f64,
            a.steady_cpu / a.steady_ok.max(1) as f64
        ),
        ratio(
            m.burst_cpu / m.burst_ok.max(1) as f64,
            a.burst_cpu / a.burst_ok.max(1) as f64
        ),
        ratio(
            m.burst_ok as f64 / m.burst_publish_secs.max(1e-9),
            a.burst_ok as f64 / a.burst_publish_secs.max(1e-9)
        ),
        m.data_bytes as f64 / m.delivered.max(1) as f64,
        a.data_bytes as f64 / a.delivered.max(1) as f64,
    );
    println!(
        "steady requests written after their due time by p99 {:.2} ms (annotation), {:.2} ms (Mercure)",
        ms(a.late.quantile(0.99)),
        ms(m.late.quantile(0.99)),
    );
    println!(
        "duplicates {}, events without a probe {}, resets {}, subscriber errors {}{}",
        seen.duplicates,
        seen.foreign,
        seen.resets,
        seen.errors.len(),
        seen.errors
            .first()
            .map_or_else(String::new, |e| format!(" (first: {e})")),
    );
    println!("mercure: {}", if clean { "ok" } else { "FAILED" });
    clean
}

/// Server CPU µs per delivery, or `-` without any.
fn per_delivery(cpu_secs: f64, deliveries: u64) -> String {
    if deliveries == 0 {
        return "-".to_owned();
    }
    format!("{:.2}", cpu_secs * 1e6 / deliveries as f64)
}
