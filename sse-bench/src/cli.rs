//! The command line: presets, flags, machine setup (limits, pinning), and the order of runs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::presets::{self, Overrides, Preset};
use crate::procfs;
use crate::report::{self, Column};
use crate::resume_storm::{self, ResumeStormArgs};
use crate::run::{self, Env, RunReport, ServerSpec};
use crate::server::{self, Impl, ServeArgs};
use crate::soak::{self, SoakArgs};

/// Load tool for SSE servers: N real connections over loopback, events with a sequence number
/// and a send time, loss, duplicates, latency, server CPU and memory.
#[derive(Debug, Parser)]
#[command(name = "sse-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// 50k connections, keep-alive only: server memory per connection (with --compare, also
    /// against a bare actix streaming response).
    Idle(LoadArgs),
    /// 5000 subscribers, 1000 events/s for 2 s, 200 B events.
    Fanout(LoadArgs),
    /// 100k events as fast as possible to 100 subscribers.
    Burst(LoadArgs),
    /// 1000 readers plus 100 stalled clients for 30 s, 500 events/s.
    SlowConsumer(LoadArgs),
    /// 1000 subscribers: 4 KiB events at 100/s, then 64 KiB events at 10/s.
    BigPayload(LoadArgs),
    /// 5000 subscribers while 256 connections publish as fast as they can for 5 s.
    PublishStorm(LoadArgs),
    /// N subscribers on a topic each (`?topic=users/{i}`), 500 events/s of audience one, for
    /// N in 100, 1000, 5000, 10 000 (`--subs` picks one): server CPU per event and p99.
    Targeted(LoadArgs),
    /// A full history, then 200 connections that resume 55 000 events back and never read,
    /// while 100 events/s are published: publish latency, memory per such connection.
    ResumeStorm(ResumeStormArgs),
    /// Our server under churn for --seconds: waves of 1000 readers, 100 stalled clients,
    /// resumes from random old ids, a publish storm, Redis restarts with --redis; fails
    /// unless no subscriber is left, no reader lost an event, and memory came back.
    Soak(SoakArgs),
    /// Two instances sharing an event log, per backend (memory, redis, nats): cross-instance
    /// latency, throughput, CPU per event, loss through an outage.
    Engines(crate::engines::EnginesArgs),
    /// N instances of our server on one engine (Redis or NATS), subscribers spread over them
    /// from load processes of their own, one publisher: per instance, subscribers held, RSS
    /// per connection, CPU per delivery; overall loss, duplicates, latency; then the same on
    /// one instance with one instance's share. Fails on loss.
    Scale(crate::scale::ScaleArgs),
    /// A transactional handler (`#[emit_event(.., transactional)]`, the event written in the
    /// handler's transaction) against the same handler without it, on SQLite and PostgreSQL:
    /// request latency p50/p99 and server CPU per request, same run.
    Tx(crate::tx::TxArgs),
    /// Publishing through the Mercure hub (`POST /.well-known/mercure`, JWT verified on
    /// every publish) beside an `#[emit_event]` handler, same server, same subscribers, same
    /// data: request latency p50/p99, burst throughput, delivery latency, server CPU per
    /// publish and per delivery, loss, and the ratios.
    Mercure(crate::mercure::MercureArgs),
    /// The server of `mercure` (started by it).
    #[command(hide = true)]
    ServeMercure(crate::mercure::ServeMercureArgs),
    /// The server of `tx` (started by it).
    #[command(hide = true)]
    ServeTx(crate::tx::ServeTxArgs),
    /// One load process of `scale` (started by it).
    #[command(hide = true)]
    ScaleLoad(crate::scale::LoadArgs),
    /// Runs one of the servers under test (used by the load tool).
    #[command(hide = true)]
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Subscribers that keep reading.
    #[arg(long)]
    subs: Option<usize>,
    /// Subscribers that stop reading after the response head.
    #[arg(long)]
    stalled: Option<usize>,
    /// Events per second (0: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// How long to publish (idle: how long to hold the connections).
    #[arg(long)]
    seconds: Option<f64>,
    /// How many events to publish (instead of --seconds).
    #[arg(long)]
    events: Option<u64>,
    /// Size of each event's JSON payload.
    #[arg(long)]
    payload_bytes: Option<usize>,
    /// Concurrent publishing connections.
    #[arg(long)]
    publishers: Option<usize>,
    /// Runs ours and the naive baseline under the same load, alternately, and prints ratios.
    #[arg(long, conflicts_with = "server")]
    compare: bool,
    /// Runs ours without and with a Prometheus recorder (sse-core's `metrics`), alternately,
    /// and prints the ratio: the cost of metrics.
    #[arg(long, conflicts_with_all = ["server", "compare"])]
    compare_metrics: bool,
    /// Runs ours with compression off and identity clients, and with `compress(true)` and
    /// clients that ask for gzip and decode it, alternately, on payloads made of records (JSON
    /// as an API returns it); prints bytes on the wire per delivery and the ratios.
    #[arg(long, conflicts_with_all = ["server", "compare", "compare_metrics"])]
    compress: bool,
    /// With --compare, --compare-metrics or --compress: rounds of runs (each round runs every server once; the order
    /// alternates); figures are averaged.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Which server to start when not comparing.
    #[arg(long = "impl", value_enum, default_value_t = Impl::Ours)]
    imp: Impl,
    /// Aims at a running server instead, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    server: Option<String>,
    /// The running server's process id (default: the process listening on its port).
    #[arg(long, requires = "server")]
    server_pid: Option<u32>,
    /// Path of the SSE endpoint.
    #[arg(long, default_value = "/events")]
    events_path: String,
    /// Path of the publish route (POST, JSON body).
    #[arg(long, default_value = "/publish")]
    publish_path: String,
    /// Body for another server's publish route: `{probe}` becomes the event's probe (put it
    /// in a string field that the event carries) and `{seq}` its number.
    #[arg(long)]
    publish_body: Option<String>,
    /// Client threads (default: one per core left to the load tool).
    #[arg(long)]
    client_threads: Option<usize>,
    /// Connections per loopback source address (127.0.0.1, then .2, ...).
    #[arg(long, default_value_t = 25_000)]
    conns_per_addr: usize,
    /// Does not pin the server and the load tool to different cores.
    #[arg(long)]
    no_pin: bool,
    /// actix workers of the started servers (default: the cores the server is pinned to).
    #[arg(long)]
    server_workers: Option<usize>,
    /// History of our server, in events (sse-core's default).
    #[arg(long, default_value_t = 65_536)]
    history: usize,
    /// History of our server, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    history_bytes: usize,
    /// Longest wait for the last deliveries after publishing, seconds.
    #[arg(long)]
    drain_max: Option<f64>,
    /// Pause between connecting and measuring memory, seconds.
    #[arg(long)]
    settle: Option<f64>,
    /// Seconds the connected subscribers are held idle before publishing, to report CPU per
    /// event without the idle connections' own cost (default: 2 for `targeted`, else 0).
    #[arg(long)]
    idle_baseline: Option<f64>,
    /// Prints per-second p99 latency and server RSS of every run.
    #[arg(long)]
    timeline: bool,
    /// Prints the table as Markdown.
    #[arg(long)]
    markdown: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (preset, args) = match cli.command {
        Command::Engines(args) => return crate::engines::main(&args),
        Command::Tx(args) => return crate::tx::main(&args),
        Command::Mercure(args) => return crate::mercure::main(&args),
        Command::ServeMercure(args) => {
            return match crate::mercure::serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("serve-mercure: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::ServeTx(args) => {
            return match crate::tx::serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("serve-tx: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Scale(args) => return exit(crate::scale::main(&args)),
        Command::ScaleLoad(args) => return exit(crate::scale::load_main(&args)),
        Command::Serve(args) => {
            return match server::serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("sse-bench serve: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::ResumeStorm(args) => return exit(resume_storm::main(&args)),
        Command::Soak(args) => return exit(soak::main(&args)),
        Command::Idle(a) => (Preset::Idle, a),
        Command::Fanout(a) => (Preset::Fanout, a),
        Command::Burst(a) => (Preset::Burst, a),
        Command::SlowConsumer(a) => (Preset::SlowConsumer, a),
        Command::BigPayload(a) => (Preset::BigPayload, a),
        Command::PublishStorm(a) => (Preset::PublishStorm, a),
        Command::Targeted(a) => (Preset::Targeted, a),
    };
    exit(load(preset, &args))
}

fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sse-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn load(preset: Preset, args: &LoadArgs) -> Result<(), String> {
    let external = args.server.as_deref().map(parse_server).transpose()?;
    let nofile = procfs::raise_nofile_limit();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (server_cpus, load_cores) = procfs::pin_cores(args.no_pin || external.is_some())?;
    let pin = server_cpus.is_some();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let events_path = match &external {
        Some((_, _, Some(path))) => path.clone(),
        _ => args.events_path.clone(),
    };
    let env = Env {
        exe,
        serve: ServeArgs {
            workers: args.server_workers.unwrap_or(if pin { 1 } else { cores }),
            history: args.history,
            history_bytes: args.history_bytes,
            ..ServeArgs::new(Impl::Ours)
        },
        server_cpus,
        load_cores: load_cores as f64,
        client_threads: args.client_threads.unwrap_or(load_cores).max(1),
        conns_per_addr: args.conns_per_addr,
        read_buf: if preset == Preset::Idle {
            2048
        } else {
            64 * 1024
        },
        events_path,
        publish_path: args.publish_path.clone(),
        body_template: args.publish_body.clone(),
        nofile,
        verbose: !args.quiet,
    };
    let overrides = Overrides {
        subs: args.subs,
        stalled: args.stalled,
        rate: args.rate,
        seconds: args.seconds,
        events: args.events,
        payload_bytes: args.payload_bytes,
        publishers: args.publishers,
        drain_max: args.drain_max,
        settle: args.settle,
        idle_baseline: args.idle_baseline,
        rows: args.compress,
    };
    let servers: Vec<ServerSpec> = match (&external, args.compare) {
        (Some((addr, host, _)), _) => vec![ServerSpec::External {
            addr: *addr,
            host: host.clone(),
            pid: args.server_pid,
        }],
        (None, _) if args.compress => vec![
            ServerSpec::Spawn(Impl::Ours),
            ServerSpec::Spawn(Impl::OursGzip),
        ],
        (None, _) if args.compare_metrics => vec![
            ServerSpec::Spawn(Impl::Ours),
            ServerSpec::Spawn(Impl::OursMetrics),
        ],
        (None, true) if preset == Preset::Idle => [Impl::Ours, Impl::Naive, Impl::Bare]
            .map(ServerSpec::Spawn)
            .to_vec(),
        (None, true) => vec![
            ServerSpec::Spawn(Impl::Ours),
            ServerSpec::Spawn(Impl::Naive),
        ],
        (None, false) => vec![ServerSpec::Spawn(args.imp)],
    };

    println!("$ {}", procfs::command_line());
    println!("{}", machine(&env, pin, cores));
    for scenario in presets::scenarios(preset, &overrides) {
        println!("\n== {} ==\n{}", scenario.name, describe(&scenario));
        let rounds = if args.compare || args.compare_metrics || args.compress {
            args.rounds.max(1)
        } else {
            1
        };
        let mut runs: Vec<RunReport> = Vec::new();
        for round in 0..rounds {
            let mut order: Vec<&ServerSpec> = servers.iter().collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for server in order {
                let report = run::run(server, &scenario, &env)
                    .map_err(|e| format!("{} run failed: {e}", server.label()))?;
                runs.push(report);
            }
        }
        let columns: Vec<Column<'_>> = servers
            .iter()
            .map(|s| Column {
                label: s.label(),
                runs: runs.iter().filter(|r| r.label == s.label()).collect(),
            })
            .collect();
        print!("{}", report::table(&columns, args.markdown));
        for r in &runs {
            print!("{}", report::notes(r, env.load_cores));
            if args.timeline || preset == Preset::SlowConsumer {
                print!("{}", report::timeline(r));
            }
        }
        if let (Some(ours), Some(bare)) = (
            columns.iter().find(|c| c.label == "ours"),
            columns.iter().find(|c| c.label == "bare"),
        ) {
            let per = |c: &Column<'_>| {
                c.runs.iter().map(|r| r.rss_per_conn).sum::<f64>() / c.runs.len().max(1) as f64
            };
            println!(
                "  server RSS per idle connection over a bare actix stream: {:+.0} B",
                per(ours) - per(bare)
            );
        }
    }
    Ok(())
}

/// `http://host:port[/path]` → address, Host header, path. Loopback addresses only.
fn parse_server(url: &str) -> Result<(SocketAddr, String, Option<String>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--server {url:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let with_port = if authority
        .rsplit(':')
        .next()
        .is_some_and(|p| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("--server {url:?}: {e}"))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| {
            format!("--server {url:?}: the load tool only targets loopback addresses")
        })?;
    let path = path.filter(|p| *p != "/").map(str::to_owned);
    Ok((addr, authority.to_owned(), path))
}

fn machine(env: &Env, pinned: bool, cores: usize) -> String {
    let cpu = procfs::cpu_model();
    let load = procfs::load_average().map_or("?".into(), |l| format!("{l:.2}"));
    let pinning = if pinned {
        format!(
            "server pinned to CPU {}, load tool to the other {} core(s)",
            env.server_cpus.as_deref().unwrap_or("?"),
            env.load_cores
        )
    } else {
        "not pinned".into()
    };
    format!(
        "machine: {cpu}, {cores} cores, load average {load}; {pinning}; server workers {}; \
         {} client thread(s); open-file limit {}",
        env.serve.workers, env.client_threads, env.nofile
    )
}

fn describe(s: &run::Scenario) -> String {
    let mut parts = vec![format!("{} readers", s.readers)];
    if s.stalled > 0 {
        parts.push(format!("{} stalled", s.stalled));
    }
    match &s.publish {
        Some(p) => {
            parts.push(match p.pace {
                crate::publisher::Pace::Rate(r) => format!("{r} ev/s"),
                crate::publisher::Pace::Max => "as fast as possible".into(),
            });
            parts.push(match p.limit {
                crate::publisher::Limit::Count(n) => format!("{n} events"),
                crate::publisher::Limit::For(d) => format!("for {:.1} s", d.as_secs_f64()),
            });
            parts.push(format!("{} publishing connection(s)", p.connections));
            parts.push(format!("{} payload", presets::size(p.payload_bytes)));
        }
        None => parts.push(format!("idle for {:.1} s", s.hold.as_secs_f64())),
    }
    parts.join(", ")
}
