//! `resume-storm`: a server whose history is full, then N connections that each resume from
//! far back (`Last-Event-ID` 55 000 events ago) and never read, while events are published at
//! a steady rate. What must hold: publishing stays fast (the POST's round trip) and each such
//! connection costs the server a bounded batch, not the events it missed.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio::sync::watch;

use crate::client::Target;
use crate::control;
use crate::procfs;
use crate::publisher::{self, Limit, Pace, PublishPlan, PublishReport};
use crate::report;
use crate::server::{Impl, ServeArgs, ServerProcess};

/// Flags of `sse-bench resume-storm`.
#[derive(Debug, clap::Args)]
pub struct ResumeStormArgs {
    /// Connections that resume from far back and never read.
    #[arg(long, default_value_t = 200)]
    conns: usize,
    /// Events published before they connect (fills the history).
    #[arg(long, default_value_t = 65_536)]
    fill: u64,
    /// How many events back each one resumes from.
    #[arg(long, default_value_t = 55_000)]
    back: u64,
    /// Size of each event's JSON payload.
    #[arg(long, default_value_t = 250)]
    payload_bytes: usize,
    /// Events per second published while they are connected.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to publish while they are connected, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Runs ours and the naive baseline (which ignores `Last-Event-ID`) one after the other.
    #[arg(long)]
    compare: bool,
    /// Which server to start when not comparing.
    #[arg(long = "impl", value_enum, default_value_t = Impl::Ours)]
    imp: Impl,
    /// History of our server, in events.
    #[arg(long, default_value_t = 65_536)]
    history: usize,
    /// History of our server, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    history_bytes: usize,
    /// Does not pin the server and the load tool to different cores.
    #[arg(long)]
    no_pin: bool,
    /// Prints the table as Markdown.
    #[arg(long)]
    markdown: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// What one server did.
#[derive(Clone, Debug, Default)]
pub struct StormReport {
    /// Which server.
    pub label: String,
    /// Events accepted while filling, and how fast.
    pub filled: u64,
    /// Fill rate, events per second.
    pub fill_rate: f64,
    /// The id the hostile connections resumed from (ours).
    pub resumed_from: Option<String>,
    /// Publish round trips before they connect (the same rate), microseconds.
    pub quiet: PublishReport,
    /// Publish round trips while they are connected.
    pub storm: PublishReport,
    /// Hostile connections whose request was sent.
    pub hostile: usize,
    /// Server RSS before they connect, bytes.
    pub rss_before: u64,
    /// Largest server RSS while they were connected, bytes.
    pub rss_peak: u64,
    /// `(rss_peak − rss_before) / hostile`, bytes.
    pub rss_per_conn: f64,
    /// Server CPU seconds from their connecting to the end of publishing.
    pub cpu: f64,
    /// Wall time of that span, seconds.
    pub wall: f64,
    /// Our server's `/stats` at the end.
    pub stats: Option<serde_json::Value>,
}

/// Runs the subcommand.
pub fn main(args: &ResumeStormArgs) -> Result<(), String> {
    procfs::raise_nofile_limit();
    let (cpus, _) = crate::procfs::pin_cores(args.no_pin)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    println!("$ {}", crate::procfs::command_line());
    println!(
        "machine: {}, load average {}; server {}",
        crate::procfs::cpu_model(),
        procfs::load_average().map_or("?".into(), |l| format!("{l:.2}")),
        cpus.as_deref()
            .map_or("not pinned".into(), |c| format!("pinned to CPU {c}"))
    );
    println!(
        "\n== resume-storm ==\n{} events of {} B published first, then {} connections resuming \
         {} events back that never read, while {} ev/s are published for {} s",
        args.fill, args.payload_bytes, args.conns, args.back, args.rate, args.seconds
    );
    let imps = if args.compare {
        vec![Impl::Ours, Impl::Naive]
    } else {
        vec![args.imp]
    };
    let mut reports = Vec::new();
    for imp in imps {
        let r =
            run(imp, args, &exe, cpus.as_deref()).map_err(|e| format!("{imp} run failed: {e}"))?;
        reports.push(r);
    }
    print!("{}", table(&reports, args.markdown));
    for r in &reports {
        if let Some(stats) = &r.stats {
            println!(
                "  {}: resumed from {}; server stats: resumed {}, resets {}, subscribers {}",
                r.label,
                r.resumed_from.as_deref().unwrap_or("-"),
                control::counter(stats, "resumed"),
                control::counter(stats, "resets"),
                control::counter(stats, "subscribers"),
            );
        }
        for e in r.quiet.errors.iter().chain(&r.storm.errors) {
            println!("  note ({}): {e}", r.label);
        }
    }
    Ok(())
}

/// One server through the whole sequence.
pub fn run(
    imp: Impl,
    args: &ResumeStormArgs,
    exe: &std::path::Path,
    cpus: Option<&str>,
) -> io::Result<StormReport> {
    let log = |msg: String| {
        if !args.quiet {
            eprintln!("[{imp}] {msg}");
        }
    };
    let serve = ServeArgs {
        history: args.history,
        history_bytes: args.history_bytes,
        ..ServeArgs::new(imp)
    };
    let server = ServerProcess::spawn(exe, &serve, cpus)?;
    let (addr, pid) = (server.addr, server.pid());
    let sample = || procfs::sample(pid).unwrap_or_default();
    let base = Instant::now();
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
            payload_bytes: args.payload_bytes,
            rows: false,
            body_template: None,
            base,
        })?
        .join()
        .map_err(|_| io::Error::other("the publisher thread panicked"))
    };
    let mut report = StormReport {
        label: imp.to_string(),
        ..StormReport::default()
    };

    let fill = publish(Pace::Max, Limit::Count(args.fill), 16)?;
    report.filled = fill.accepted;
    report.fill_rate = fill.accepted as f64 / fill.elapsed.as_secs_f64().max(1e-9);
    log(format!(
        "filled {} events in {:.1} s",
        fill.accepted,
        fill.elapsed.as_secs_f64()
    ));
    let quiet_events = (args.rate * 2.0).round().max(1.0) as u64;
    report.quiet = publish(Pace::Rate(args.rate), Limit::Count(quiet_events), 1)?;

    // The naive server has no ids and ignores the header: its clients just connect.
    if imp == Impl::Ours {
        let now = control::current_id(addr, "/events")?;
        report.resumed_from = control::id_before(&now, args.back);
        if report.resumed_from.is_none() {
            return Err(io::Error::other(format!("unexpected event id {now:?}")));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    report.rss_before = sample().rss_bytes;

    let cpu0 = sample();
    let t0 = Instant::now();
    let hostile = Hostile::open(addr, args.conns, report.resumed_from.clone())?;
    report.hostile = hostile.wait(Duration::from_secs(30));
    log(format!("{} hostile connections open", report.hostile));
    // Let the server take in the requests (and, before the fix, queue the missed events).
    let mut peak = 0;
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        peak = peak.max(sample().rss_bytes);
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = (args.rate * args.seconds).round().max(1.0) as u64;
    let storm = std::thread::scope(|s| {
        let publishing = s.spawn(|| publish(Pace::Rate(args.rate), Limit::Count(events), 1));
        while !publishing.is_finished() {
            peak = peak.max(sample().rss_bytes);
            std::thread::sleep(Duration::from_millis(100));
        }
        publishing.join()
    })
    .map_err(|_| io::Error::other("the publisher panicked"))??;
    let cpu1 = sample();
    peak = peak.max(cpu1.rss_bytes);
    report.wall = t0.elapsed().as_secs_f64();
    report.cpu = cpu1.cpu_secs - cpu0.cpu_secs;
    report.storm = storm;
    report.rss_peak = peak;
    if report.hostile > 0 {
        report.rss_per_conn = peak.saturating_sub(report.rss_before) as f64 / report.hostile as f64;
    }
    if imp == Impl::Ours {
        report.stats = control::stats(addr).ok();
    }
    hostile.close();
    drop(server);
    Ok(report)
}

fn table(reports: &[StormReport], markdown: bool) -> String {
    type Row = (&'static str, fn(&StormReport) -> String);
    let rows: [Row; 13] = [
        ("fill: events accepted", |r| r.filled.to_string()),
        ("fill rate (ev/s)", |r| format!("{:.0}", r.fill_rate)),
        ("hostile connections", |r| r.hostile.to_string()),
        ("publish p50 before (ms)", |r| {
            format!("{:.2}", r.quiet.round_trip.quantile(0.5) as f64 / 1000.0)
        }),
        ("publish p50 during (ms)", |r| {
            format!("{:.2}", r.storm.round_trip.quantile(0.5) as f64 / 1000.0)
        }),
        ("publish p99 during (ms)", |r| {
            format!("{:.2}", r.storm.round_trip.quantile(0.99) as f64 / 1000.0)
        }),
        ("publish max during (ms)", |r| {
            format!("{:.2}", r.storm.round_trip.max() as f64 / 1000.0)
        }),
        ("publish accepted / failed", |r| {
            format!("{} / {}", r.storm.accepted, r.storm.failed)
        }),
        ("server RSS before (MiB)", |r| {
            format!("{:.1}", r.rss_before as f64 / 1048576.0)
        }),
        ("server RSS peak with them (MiB)", |r| {
            format!("{:.1}", r.rss_peak as f64 / 1048576.0)
        }),
        ("server RSS per hostile connection (KiB)", |r| {
            format!("{:.1}", r.rss_per_conn / 1024.0)
        }),
        ("server CPU (s)", |r| format!("{:.2}", r.cpu)),
        ("server CPU (% of a core)", |r| {
            format!("{:.0} %", 100.0 * r.cpu / r.wall.max(1e-9))
        }),
    ];
    let mut out = vec![std::iter::once("figure".to_owned())
        .chain(reports.iter().map(|r| r.label.clone()))
        .collect::<Vec<_>>()];
    for (name, value) in rows {
        out.push(
            std::iter::once(name.to_owned())
                .chain(reports.iter().map(value))
                .collect(),
        );
    }
    report::render(&out, markdown)
}

/// Connections that send a stream request (with `Last-Event-ID` if given), with a small
/// receive buffer, and never read.
struct Hostile {
    thread: JoinHandle<()>,
    stop: watch::Sender<bool>,
    opened: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    total: usize,
}

impl Hostile {
    fn open(addr: SocketAddr, n: usize, last_event_id: Option<String>) -> io::Result<Hostile> {
        let (stop, stop_rx) = watch::channel(false);
        let opened = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (o, f) = (opened.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("bench-hostile".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    f.fetch_add(n, Ordering::Relaxed);
                    return;
                };
                rt.block_on(async move {
                    let header = last_event_id
                        .map(|id| format!("Last-Event-ID: {id}\r\n"))
                        .unwrap_or_default();
                    let request = format!(
                        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
                         {header}\r\n"
                    );
                    let mut held = Vec::with_capacity(n);
                    for _ in 0..n {
                        match hostile_conn(addr, &request).await {
                            Ok(s) => {
                                o.fetch_add(1, Ordering::Relaxed);
                                held.push(s);
                            }
                            Err(_) => {
                                f.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    let mut stop_rx = stop_rx;
                    while !*stop_rx.borrow_and_update() {
                        if stop_rx.changed().await.is_err() {
                            break;
                        }
                    }
                    drop(held);
                });
            })?;
        Ok(Hostile {
            thread,
            stop,
            opened,
            failed,
            total: n,
        })
    }

    /// Waits until every connection is open or failed; returns how many are open.
    fn wait(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let (o, f) = (
                self.opened.load(Ordering::Relaxed),
                self.failed.load(Ordering::Relaxed),
            );
            if o + f >= self.total || Instant::now() >= deadline {
                return o;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

async fn hostile_conn(addr: SocketAddr, request: &str) -> io::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // A phone that went to sleep: its window fills at once.
    socket.set_recv_buffer_size(4096)?;
    let mut stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .map_err(|_| io::Error::other("connect timed out"))??;
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}
