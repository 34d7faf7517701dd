//! `soak`: our server under churn for a while. Waves of readers connect and leave, stalled
//! clients never read, clients resume from random old ids, a publish storm runs in the middle,
//! and with `--redis` a private Redis is restarted under the server. At the end: no subscriber
//! left, no event lost by a reading client (every gap in what it received is covered by an
//! `sse-reset`), and server memory back within a bound.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::Bound;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::watch;

use crate::client::{source_addr, Target};
use crate::control;
use crate::http::{parse_head, Body};
use crate::procfs;
use crate::publisher::{self, Limit, Pace, PublishPlan, PublishReport};
use crate::server::{Impl, ServeArgs, ServerProcess};
use crate::sse::{Item, Parser};

/// Flags of `sse-bench soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long the load runs, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Shares the server's events through Redis. Without a value (or `private`), starts a
    /// private `redis-server` on a free port and restarts it during the run; with a URL, uses
    /// that Redis and does not restart it.
    #[arg(long, num_args = 0..=1, default_missing_value = "private")]
    pub redis: Option<String>,
    /// Restarts of the private Redis, spread over the run.
    #[arg(long, default_value_t = 2)]
    pub redis_restarts: usize,
    /// Readers per wave.
    #[arg(long, default_value_t = 1000)]
    pub wave: usize,
    /// How long each wave stays, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub wave_seconds: f64,
    /// Clients that never read, held for the whole run.
    #[arg(long, default_value_t = 100)]
    pub stalled: usize,
    /// Clients resuming from a random old id, per second (each reads for 1 s).
    #[arg(long, default_value_t = 5.0)]
    pub resumes_per_sec: f64,
    /// Steady publish rate, events per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Connections of the publish storm (as fast as possible) in the middle of the run.
    #[arg(long, default_value_t = 64)]
    pub storm_publishers: usize,
    /// How long the storm lasts, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub storm_seconds: f64,
    /// Allowed growth of the server's RSS from start to end, MiB.
    #[arg(long, default_value_t = 64)]
    pub max_growth_mib: u64,
    /// Does not pin the server and the load tool to different cores.
    #[arg(long)]
    pub no_pin: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What the soak found.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    /// Server RSS before the load, bytes.
    pub rss_start: u64,
    /// Largest server RSS seen, bytes.
    pub rss_peak: u64,
    /// Server RSS after every client left, bytes.
    pub rss_end: u64,
    /// Subscribers the server still counted at the end.
    pub subscribers_left: u64,
    /// Events a reading client missed without an `sse-reset` covering them.
    pub lost: u64,
    /// Events received twice or out of order by one client.
    pub out_of_order: u64,
    /// `sse-reset` events received.
    pub resets: u64,
    /// Reading connections opened (waves, resumes, the witness).
    pub readers: u64,
    /// Of which resumed with `Last-Event-ID`.
    pub resumed: u64,
    /// Connections that could not be opened or got no 200.
    pub connect_failures: u64,
    /// Events accepted by the publish route.
    pub published: u64,
    /// Distinct events received by any client.
    pub seen: u64,
    /// Redis restarts carried out.
    pub redis_restarts: usize,
    /// The server's `/stats` at the end.
    pub stats: serde_json::Value,
}

impl SoakReport {
    /// The assertions that failed, in words.
    pub fn failures(&self, max_growth_mib: u64) -> Vec<String> {
        let mut out = Vec::new();
        if self.subscribers_left != 0 {
            out.push(format!("{} subscribers left", self.subscribers_left));
        }
        if self.lost != 0 {
            out.push(format!("{} events lost without a reset", self.lost));
        }
        let bound = self.rss_start + (max_growth_mib << 20);
        if self.rss_end >= bound {
            out.push(format!(
                "server RSS grew from {:.1} to {:.1} MiB (bound +{max_growth_mib} MiB)",
                mib(self.rss_start),
                mib(self.rss_end)
            ));
        }
        if self.readers == 0 {
            out.push("no reader connected".into());
        }
        out
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Runs the subcommand; an error if an assertion failed.
pub fn main(args: &SoakArgs) -> Result<(), String> {
    procfs::raise_nofile_limit();
    let (cpus, _) = crate::procfs::pin_cores(args.no_pin)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    println!("$ {}", crate::procfs::command_line());
    let r = run(args, &exe, cpus.as_deref()).map_err(|e| format!("soak failed: {e}"))?;
    println!(
        "server RSS: start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB ({:+.1} MiB)",
        mib(r.rss_start),
        mib(r.rss_peak),
        mib(r.rss_end),
        mib(r.rss_end) - mib(r.rss_start)
    );
    println!("subscribers left: {}", r.subscribers_left);
    println!(
        "reading connections: {} ({} resumed from an old id), connect failures {}",
        r.readers, r.resumed, r.connect_failures
    );
    println!(
        "events: {} published, {} seen by some client; lost by reading clients: {}; out of \
         order or twice: {}; sse-reset received: {}",
        r.published, r.seen, r.lost, r.out_of_order, r.resets
    );
    if args.redis.is_some() {
        println!("redis restarts: {}", r.redis_restarts);
    }
    println!("server stats: {}", r.stats);
    let failures = r.failures(args.max_growth_mib);
    if failures.is_empty() {
        println!("soak: ok");
        Ok(())
    } else {
        Err(format!("soak: {}", failures.join("; ")))
    }
}

/// One soak run.
pub fn run(args: &SoakArgs, exe: &std::path::Path, cpus: Option<&str>) -> io::Result<SoakReport> {
    let log = |msg: String| {
        if !args.quiet {
            eprintln!("[soak] {msg}");
        }
    };
    let mut redis = match args.redis.as_deref() {
        Some("private") => Some(PrivateRedis::start()?),
        _ => None,
    };
    let redis_url = match (&redis, &args.redis) {
        (Some(r), _) => Some(r.url()),
        (None, url) => url.clone(),
    };
    let serve = ServeArgs {
        redis: redis_url,
        redis_stream: format!("sse-bench:soak:{}", std::process::id()),
        ..ServeArgs::new(Impl::Ours)
    };
    let server = ServerProcess::spawn(exe, &serve, cpus)?;
    let (addr, pid) = (server.addr, server.pid());
    let sample = || procfs::sample(pid).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    let mut report = SoakReport {
        rss_start: sample().rss_bytes,
        ..SoakReport::default()
    };
    log(format!(
        "server pid {pid} at {addr}, RSS {:.1} MiB",
        mib(report.rss_start)
    ));

    let base = Instant::now();
    let seconds = args.seconds.max(0.5);
    let end = base + Duration::from_secs_f64(seconds);
    let publish = |pace, limit, connections| {
        publisher::start(PublishPlan {
            target: Target {
                addr,
                host: addr.to_string(),
                path: "/publish".into(),
            },
            pace,
            limit,
            connections,
            payload_bytes: 250,
            rows: false,
            body_template: None,
            base,
        })
    };
    let steady = publish(
        Pace::Rate(args.rate),
        Limit::For(Duration::from_secs_f64(seconds)),
        1,
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let ledger = std::thread::Builder::new()
        .name("bench-soak".into())
        .spawn({
            let plan = Plan::new(args, addr, end);
            move || clients(plan, stop_rx)
        })?;

    // The main thread paces the storm and the Redis restarts, and samples memory.
    let storm_at = base + Duration::from_secs_f64(seconds * 0.5);
    let mut storm = None;
    let restarts: Vec<Instant> = (1..=args.redis_restarts)
        .map(|k| {
            base + Duration::from_secs_f64(seconds * k as f64 / (args.redis_restarts + 1) as f64)
        })
        .collect();
    let mut next_restart = 0;
    while Instant::now() < end {
        report.rss_peak = report.rss_peak.max(sample().rss_bytes);
        let now = Instant::now();
        if storm.is_none() && now >= storm_at {
            log("publish storm".into());
            storm = Some(publish(
                Pace::Max,
                Limit::For(Duration::from_secs_f64(
                    args.storm_seconds.min(seconds * 0.25),
                )),
                args.storm_publishers.max(1),
            )?);
        }
        if let Some(r) = redis.as_mut() {
            if next_restart < restarts.len() && now >= restarts[next_restart] {
                log("restarting redis".into());
                r.restart()?;
                next_restart += 1;
                report.redis_restarts += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut published = PublishReport::default();
    for handle in [Some(steady), storm].into_iter().flatten() {
        let p = handle
            .join()
            .map_err(|_| io::Error::other("a publisher panicked"))?;
        published.accepted += p.accepted;
    }
    report.published = published.accepted;
    // The last events reach the readers still connected; then everyone leaves.
    std::thread::sleep(Duration::from_secs(1));
    let _ = stop_tx.send(true);
    let ledger = ledger
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))?;

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        report.stats = control::stats(addr).unwrap_or_default();
        report.subscribers_left = control::counter(&report.stats, "subscribers");
        if report.subscribers_left == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    report.rss_end = sample().rss_bytes;
    report.rss_peak = report.rss_peak.max(report.rss_end);
    ledger.summarize(&mut report);
    drop(server);
    drop(redis);
    Ok(report)
}

/// A `redis-server` of our own on a free port, without persistence: a restart empties it, as
/// a crash of a cache-only Redis would.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start() -> io::Result<PrivateRedis> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Self::spawn(port)?;
        let redis = PrivateRedis { child, port };
        redis.wait_up()?;
        Ok(redis)
    }

    fn spawn(port: u16) -> io::Result<Child> {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start redis-server: {e}")))
    }

    fn wait_up(&self) -> io::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..100 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::other("redis-server did not start listening"))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it, leaves it down for a second, and starts it again, empty, on the same port.
    fn restart(&mut self) -> io::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_secs(1));
        self.child = Self::spawn(self.port)?;
        self.wait_up()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An event id split for ordering: the epoch, and the numbers after it (`<seq>`, or Redis's
/// `<ms>-<n>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Id {
    epoch: String,
    at: Vec<u64>,
}

impl Id {
    fn parse(s: &[u8]) -> Option<Id> {
        let s = std::str::from_utf8(s).ok()?;
        let mut parts = s.split('-');
        let epoch = parts.next()?.to_owned();
        let at = parts
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()
            .ok()?;
        (!at.is_empty()).then_some(Id { epoch, at })
    }

    fn text(&self) -> String {
        let mut s = self.epoch.clone();
        for n in &self.at {
            s.push('-');
            s.push_str(&n.to_string());
        }
        s
    }
}

/// A run of events one client received without a reset between them: every event of the
/// stream after `after` (or from `first`) up to `last` should be among its `count`.
#[derive(Clone, Debug)]
struct Segment {
    after: Option<Id>,
    first: Id,
    last: Id,
    count: u64,
}

/// Everything the clients saw.
#[derive(Debug, Default)]
struct Ledger {
    /// Every distinct id seen by any client, by epoch: the stream, as far as anyone saw it.
    seen: HashMap<String, BTreeSet<Vec<u64>>>,
    /// Seen ids in the order first seen, to resume from.
    history: Vec<Id>,
    segments: Vec<Segment>,
    out_of_order: u64,
    resets: u64,
    readers: u64,
    resumed: u64,
    connect_failures: u64,
}

impl Ledger {
    fn record(&mut self, id: &Id) {
        if self
            .seen
            .entry(id.epoch.clone())
            .or_default()
            .insert(id.at.clone())
        {
            self.history.push(id.clone());
        }
    }

    fn summarize(&self, report: &mut SoakReport) {
        report.seen = self.history.len() as u64;
        report.out_of_order = self.out_of_order;
        report.resets = self.resets;
        report.readers = self.readers;
        report.resumed = self.resumed;
        report.connect_failures = self.connect_failures;
        report.lost = self.segments.iter().map(|s| self.missed(s)).sum();
    }

    /// Events of the stream within `s` that its client did not receive.
    fn missed(&self, s: &Segment) -> u64 {
        let Some(stream) = self.seen.get(&s.last.epoch) else {
            return 0;
        };
        let from = match &s.after {
            // A resume from another epoch is answered with a reset, which starts a segment;
            // a segment across epochs is a gap nothing covered.
            Some(after) if after.epoch != s.last.epoch => return 1,
            Some(after) => Bound::Excluded(after.at.clone()),
            None => Bound::Included(s.first.at.clone()),
        };
        let should = stream
            .range((from, Bound::Included(s.last.at.clone())))
            .count() as u64;
        should.saturating_sub(s.count)
    }
}

/// What the client thread runs.
#[derive(Clone)]
struct Plan {
    addr: SocketAddr,
    end: Instant,
    wave: usize,
    wave_time: Duration,
    stalled: usize,
    resume_every: Duration,
}

impl Plan {
    fn new(args: &SoakArgs, addr: SocketAddr, end: Instant) -> Plan {
        Plan {
            addr,
            end,
            wave: args.wave,
            wave_time: Duration::from_secs_f64(args.wave_seconds.max(0.1)),
            stalled: args.stalled,
            resume_every: Duration::from_secs_f64(1.0 / args.resumes_per_sec.max(0.01)),
        }
    }
}

/// The client side of the soak, on one thread: stalled clients, waves, resumes, a witness.
fn clients(plan: Plan, stop: watch::Receiver<bool>) -> Ledger {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Ledger {
            connect_failures: 1,
            ..Ledger::default()
        };
    };
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, {
        let ledger = ledger.clone();
        async move {
            let mut tasks = Vec::new();
            for _ in 0..plan.stalled {
                let (plan, stop) = (plan.clone(), stop.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    let source = Ipv4Addr::new(127, 0, 0, 2);
                    if let Ok(s) = open(plan.addr, source, None, true).await {
                        wait_stop(stop).await;
                        drop(s);
                    }
                }));
            }
            // The witness reads from start to end, resuming whenever its stream ends, so
            // that every event is seen by someone.
            tasks.push(tokio::task::spawn_local(witness(
                plan.clone(),
                ledger.clone(),
                stop.clone(),
            )));
            tasks.push(tokio::task::spawn_local(resumes(
                plan.clone(),
                ledger.clone(),
                stop.clone(),
            )));
            tasks.push(tokio::task::spawn_local(waves(plan, ledger, stop)));
            for t in tasks {
                let _ = t.await;
            }
        }
    });
    drop(local);
    ledger.take()
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn waves(plan: Plan, ledger: Rc<RefCell<Ledger>>, stop: watch::Receiver<bool>) {
    let mut wave = 0usize;
    while Instant::now() < plan.end && !*stop.borrow() {
        let until = (Instant::now() + plan.wave_time).min(plan.end);
        // A new source address per wave: the last wave's ports are in TIME_WAIT.
        let source = source_addr(Ipv4Addr::LOCALHOST, 10 + wave % 200, 1);
        let readers: Vec<_> = (0..plan.wave)
            .map(|_| {
                tokio::task::spawn_local(read(
                    plan.addr,
                    source,
                    None,
                    until,
                    ledger.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        for r in readers {
            let _ = r.await;
        }
        wave += 1;
    }
}

async fn resumes(plan: Plan, ledger: Rc<RefCell<Ledger>>, stop: watch::Receiver<bool>) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut running = Vec::new();
    let mut n = 0usize;
    while Instant::now() < plan.end && !*stop.borrow() {
        tokio::time::sleep(plan.resume_every).await;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let from = {
            let l = ledger.borrow();
            (!l.history.is_empty())
                .then(|| l.history[(rng % l.history.len() as u64) as usize].clone())
        };
        let Some(from) = from else { continue };
        let until = (Instant::now() + Duration::from_secs(1)).min(plan.end);
        running.push(tokio::task::spawn_local(read(
            plan.addr,
            source_addr(Ipv4Addr::LOCALHOST, 3 + n % 5, 1),
            Some(from),
            until,
            ledger.clone(),
            stop.clone(),
        )));
        n += 1;
        running.retain(|t| !t.is_finished());
    }
    for t in running {
        let _ = t.await;
    }
}

async fn witness(plan: Plan, ledger: Rc<RefCell<Ledger>>, stop: watch::Receiver<bool>) {
    let mut from = None;
    // Bounded: a witness that cannot stay connected stops trying after a while.
    for _ in 0..1000 {
        if *stop.borrow() {
            return;
        }
        let far = Instant::now() + Duration::from_secs(3600);
        match read(
            plan.addr,
            Ipv4Addr::LOCALHOST,
            from.clone(),
            far,
            ledger.clone(),
            stop.clone(),
        )
        .await
        {
            Some(last) => from = Some(last),
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Opens a stream (resuming after `from`) and sends the request.
async fn open(
    addr: SocketAddr,
    source: Ipv4Addr,
    from: Option<&Id>,
    stalled: bool,
) -> io::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if source != Ipv4Addr::LOCALHOST {
        socket.bind(SocketAddr::from((source, 0)))?;
    }
    if stalled {
        socket.set_recv_buffer_size(4096)?;
    }
    let mut stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .map_err(|_| io::Error::other("connect timed out"))??;
    let header = from
        .map(|id| format!("Last-Event-ID: {}\r\n", id.text()))
        .unwrap_or_default();
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{header}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

/// A reading client until `until` (or the stop, or the server ending the stream): records
/// what it received in the ledger; returns the last id it knew.
async fn read(
    addr: SocketAddr,
    source: Ipv4Addr,
    from: Option<Id>,
    until: Instant,
    ledger: Rc<RefCell<Ledger>>,
    mut stop: watch::Receiver<bool>,
) -> Option<Id> {
    let resumed = from.is_some();
    let Ok(mut stream) = open(addr, source, from.as_ref(), false).await else {
        ledger.borrow_mut().connect_failures += 1;
        return from;
    };
    let mut state = Reader {
        after: from,
        current: None,
        head: Some(Vec::new()),
        body: None,
        parser: Parser::new(),
        fresh: !resumed,
    };
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = tokio::time::sleep_until(deadline) => break,
            _ = stop.changed() => break,
        };
        if !state.feed(&buf[..n], &ledger, resumed) {
            break;
        }
    }
    state.finish(&ledger)
}

/// One reading client's parse state and current segment.
struct Reader {
    /// Where the next segment starts (exclusive).
    after: Option<Id>,
    current: Option<Segment>,
    /// The response head while incomplete.
    head: Option<Vec<u8>>,
    body: Option<Body>,
    parser: Parser,
    /// A new stream (not resumed): its first id frame says where it starts.
    fresh: bool,
}

impl Reader {
    /// Feeds bytes; false when the response is not a stream.
    fn feed(&mut self, bytes: &[u8], ledger: &RefCell<Ledger>, resumed: bool) -> bool {
        let input: Vec<u8>;
        let mut rest = bytes;
        if let Some(head) = self.head.as_mut() {
            head.extend_from_slice(bytes);
            match parse_head(head) {
                Ok(None) => return true,
                Ok(Some((h, len))) if h.status == 200 => {
                    let mut l = ledger.borrow_mut();
                    l.readers += 1;
                    l.resumed += u64::from(resumed);
                    drop(l);
                    input = head[len..].to_vec();
                    rest = &input;
                    self.body = Some(Body::new(h.body));
                    self.head = None;
                }
                _ => {
                    ledger.borrow_mut().connect_failures += 1;
                    return false;
                }
            }
        }
        let Some(mut body) = self.body.take() else {
            return false;
        };
        let mut parser = std::mem::take(&mut self.parser);
        let ok = body
            .feed(rest, |chunk| {
                parser.feed(chunk, |item| self.item(item, ledger));
                if self.fresh && self.current.is_none() && self.after.is_none() {
                    // The id frame sent on connect, before any event.
                    self.after = Id::parse(parser.last_id());
                }
            })
            .is_ok();
        self.parser = parser;
        self.body = Some(body);
        ok
    }

    fn item(&mut self, item: Item<'_>, ledger: &RefCell<Ledger>) {
        let Item::Event { event, id, .. } = item else {
            return;
        };
        let Some(id) = Id::parse(id) else { return };
        let mut l = ledger.borrow_mut();
        if event == sse_core::RESET_EVENT.as_bytes() {
            l.resets += 1;
            if let Some(s) = self.current.take() {
                l.segments.push(s);
            }
            self.after = Some(id);
            return;
        }
        l.record(&id);
        match &mut self.current {
            Some(s) if s.last.epoch == id.epoch && id.at <= s.last.at => l.out_of_order += 1,
            Some(s) => {
                s.last = id;
                s.count += 1;
            }
            None => {
                self.current = Some(Segment {
                    after: self.after.take(),
                    first: id.clone(),
                    last: id,
                    count: 1,
                });
            }
        }
    }

    /// Closes the segment; the id to resume from.
    fn finish(mut self, ledger: &RefCell<Ledger>) -> Option<Id> {
        match self.current.take() {
            Some(s) => {
                let last = s.last.clone();
                ledger.borrow_mut().segments.push(s);
                Some(last)
            }
            None => self.after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn ids_of_both_backends_parse_and_order() {
        assert_eq!(id("abc-42").at, vec![42]);
        assert_eq!(id("ep-1700000000000-3").at, vec![1_700_000_000_000, 3]);
        assert!(id("ep-1700000000000-3") < id("ep-1700000000001-0"));
        assert_eq!(id("ep-17-3").text(), "ep-17-3");
        assert!(Id::parse(b"nonsense").is_none());
        assert!(Id::parse(b"a-b").is_none());
    }

    #[test]
    fn a_gap_counts_only_without_a_reset() {
        let mut l = Ledger::default();
        for n in 1..=10 {
            l.record(&id(&format!("e-{n}")));
        }
        let seg = |after: Option<&str>, first: &str, last: &str, count| Segment {
            after: after.map(id),
            first: id(first),
            last: id(last),
            count,
        };
        // Resumed after 2, got 3..=10: complete.
        assert_eq!(l.missed(&seg(Some("e-2"), "e-3", "e-10", 8)), 0);
        // Resumed after 2, got 3, 4 and 6..=10: 5 is lost.
        assert_eq!(l.missed(&seg(Some("e-2"), "e-3", "e-10", 7)), 1);
        // Fresh, from its first event.
        assert_eq!(l.missed(&seg(None, "e-5", "e-7", 3)), 0);
        // Across epochs without a reset.
        assert_eq!(l.missed(&seg(Some("old-9"), "e-1", "e-2", 2)), 1);
    }
}
