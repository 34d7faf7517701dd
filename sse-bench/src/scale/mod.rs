//! `sse-bench scale`: N instances of the bench's server sharing one engine (a private Redis
//! or NATS, or the SQL event log in a schema of the local PostgreSQL), their subscribers opened by load processes of their own (each under the
//! open-file limit, each from its own loopback source address), one publisher on the first
//! instance. Then the same load on ONE instance with one instance's share of the
//! subscribers, so that what spreading costs shows.
//!
//! Nothing is pinned: servers, engine, load processes and publisher share the machine, as
//! they would on one host. Every wait has a deadline; the run fails (non-zero exit) when an
//! event was lost or duplicated, or when fewer subscribers connected than asked.

mod commandstats;
mod load;
mod report;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

pub use load::{main as load_main, LoadArgs};

use crate::client::Target;
use crate::control;
use crate::engines::{Backend, Engine};
use crate::procfs;
use crate::publisher::{self, Limit, Pace, PublishPlan};
use crate::server::{Impl, ServeArgs, ServerProcess};
use crate::stats::Histogram;
use load::{LoadProcess, Summary};

/// Options of the `scale` command.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The engine the instances share: a private server on a free port, stopped at the end.
    #[arg(long, value_enum, default_value = "redis")]
    pub engine: Backend,
    /// Server instances.
    #[arg(long, default_value_t = 3)]
    pub instances: usize,
    /// Subscribers on each instance.
    #[arg(long, default_value_t = 17_000)]
    pub subs: usize,
    /// Events per second, published on the first instance.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// How long to publish, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Size of each event's JSON payload.
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// Concurrent publishing connections (one publisher, on the first instance).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// actix workers of each instance.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// The PostgreSQL database of `--engine postgres` (a schema of its own is made for the
    /// run and dropped after it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// Subscribers per load process at most (default: the open-file limit less 256).
    #[arg(long)]
    pub per_process: Option<usize>,
    /// Longest wait for the last deliveries after publishing, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub drain_max: f64,
    /// Skips the run of one instance with one instance's share of the subscribers.
    #[arg(long)]
    pub no_single: bool,
    /// Seconds the connected subscribers are held idle before publishing, to report what the
    /// instances and the engine cost without events (0: not measured).
    #[arg(long, default_value_t = 5.0)]
    pub idle_seconds: f64,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What one run (N instances, or the single one) measured.
#[derive(Clone, Debug, Default)]
pub struct PhaseReport {
    /// `3 instances`, `1 instance`.
    pub label: String,
    /// Subscribers asked for, over all instances.
    pub asked: usize,
    /// Each instance's figures.
    pub instances: Vec<InstanceReport>,
    /// Events accepted by the publish route.
    pub published: u64,
    /// Publish requests that failed.
    pub publish_failed: u64,
    /// Achieved publish rate, events per second.
    pub publish_rate: f64,
    /// Every load process's account, merged.
    pub loads: Summary,
    /// `published` × readers.
    pub expected: u64,
    /// `expected − delivered`.
    pub lost: u64,
    /// Server CPU seconds, all instances, from connected to drained.
    pub servers_cpu: f64,
    /// The engine server's CPU seconds over the same time.
    pub engine_cpu: f64,
    /// The load processes' CPU seconds over the same time.
    pub loads_cpu: f64,
    /// Wall seconds from connected to drained.
    pub wall: f64,
    /// 1-minute load average before the run.
    pub load_average: f64,
    /// CPU of all the instances while their subscribers were connected and idle, in cores.
    pub idle_servers_share: f64,
    /// CPU of the engine over the same time, in cores.
    pub idle_engine_share: f64,
    /// Redis: calls and time per event of each command while events flowed.
    pub engine_commands: Vec<String>,
    /// Remarks.
    pub notes: Vec<String>,
}

/// One instance's figures.
#[derive(Clone, Debug, Default)]
pub struct InstanceReport {
    /// Its address.
    pub addr: Option<SocketAddr>,
    /// Subscribers it held once all connected (its `/stats`).
    pub held: u64,
    /// RSS before any subscriber, bytes.
    pub rss_before: u64,
    /// RSS once connected, bytes.
    pub rss_connected: u64,
    /// Largest RSS seen while events flowed, bytes.
    pub rss_peak: u64,
    /// CPU seconds from connected to drained.
    pub cpu: f64,
    /// Events its subscribers received (distinct, over all of them).
    pub delivered: u64,
}

impl InstanceReport {
    /// `(rss_connected − rss_before) / held`, bytes.
    pub fn rss_per_conn(&self) -> f64 {
        self.rss_connected.saturating_sub(self.rss_before) as f64 / self.held.max(1) as f64
    }
}

/// Runs the `scale` command.
pub fn main(args: &ScaleArgs) -> Result<(), String> {
    if !matches!(
        args.engine,
        Backend::Redis | Backend::Nats | Backend::Postgres
    ) {
        return Err(
            "scale runs the bench's servers on a shared engine: --engine redis, nats or postgres"
                .into(),
        );
    }
    if args.instances == 0 || args.subs == 0 || args.rate <= 0.0 || args.seconds <= 0.0 {
        return Err("--instances, --subs, --rate and --seconds must be positive".into());
    }
    if !(0.0..=3600.0).contains(&args.idle_seconds) {
        return Err("--idle-seconds must be between 0 and 3600".into());
    }
    let nofile = procfs::raise_nofile_limit();
    let per_process = args
        .per_process
        .unwrap_or(nofile.saturating_sub(256) as usize)
        .max(1);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    println!("$ {}", procfs::command_line());
    println!(
        "machine: {}, {} cores, nothing pinned; open-file limit {nofile}, at most {per_process} \
         subscribers per load process; {} engine ({})",
        procfs::cpu_model(),
        std::thread::available_parallelism().map_or(1, usize::from),
        engine_name(args.engine),
        match args.engine {
            Backend::Postgres => "the SQL event log in a schema made for the run; its CPU is \
                                  every postgres process's"
                .to_owned(),
            engine => format!("private {}-server", engine_name(engine).to_lowercase()),
        },
    );
    let mut phases = vec![(args.instances, args.subs)];
    if !args.no_single {
        phases.push((1, args.subs));
    }
    let mut reports = Vec::new();
    for (instances, subs) in phases {
        let report = run_phase(args, &exe, instances, subs, per_process)?;
        print!("{}", report::phase(&report, args));
        reports.push(report);
    }
    if let [spread, single] = reports.as_slice() {
        print!("{}", report::comparison(spread, single));
    }
    let failures: Vec<String> = reports.iter().filter_map(failure).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

fn engine_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Redis => "Redis",
        Backend::Nats => "NATS",
        Backend::Memory => "memory",
        Backend::Postgres => "PostgreSQL",
        Backend::PostgresRedis => "PostgreSQL relayed to Redis",
    }
}

/// Why a run counts as failed, if it does.
fn failure(r: &PhaseReport) -> Option<String> {
    let mut why = Vec::new();
    if r.lost > 0 {
        why.push(format!("{} deliveries lost", r.lost));
    }
    if r.loads.duplicates > 0 {
        why.push(format!("{} duplicated", r.loads.duplicates));
    }
    if (r.loads.readers as usize) < r.asked {
        why.push(format!(
            "{} of {} subscribers connected",
            r.loads.readers, r.asked
        ));
    }
    if r.published == 0 {
        why.push("nothing was published".into());
    }
    (!why.is_empty()).then(|| format!("{}: {}", r.label, why.join(", ")))
}

/// One run: `instances` servers with `subs` subscribers each.
fn run_phase(
    args: &ScaleArgs,
    exe: &Path,
    instances: usize,
    subs: usize,
    per_process: usize,
) -> Result<PhaseReport, String> {
    let label = format!(
        "{instances} instance{}",
        if instances == 1 { "" } else { "s" }
    );
    let log = |msg: String| {
        if !args.quiet {
            eprintln!("[{label}] {msg}");
        }
    };
    let mut report = PhaseReport {
        label: label.clone(),
        asked: instances * subs,
        load_average: procfs::load_average().unwrap_or(f64::NAN),
        ..PhaseReport::default()
    };
    let engine = Engine::start_with(args.engine, &args.postgres_url)?;
    let postgres = engine.postgres();
    let engine_url = match &postgres {
        Some((_, schema)) => format!("the SQL log in PostgreSQL, schema {schema}"),
        None => engine.url().ok_or("the engine has no URL")?,
    };
    let stream = format!("sse-bench-scale-{}-{instances}", std::process::id());
    let serve = ServeArgs {
        workers: args.workers.max(1),
        redis: (args.engine == Backend::Redis).then(|| engine_url.clone()),
        redis_stream: stream.clone(),
        nats: (args.engine == Backend::Nats).then(|| engine_url.clone()),
        nats_stream: stream,
        postgres: postgres.as_ref().map(|(url, _)| url.clone()),
        postgres_schema: postgres.map(|(_, schema)| schema),
        ..ServeArgs::new(Impl::Ours)
    };
    let servers = (0..instances)
        .map(|_| ServerProcess::spawn(exe, &serve, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot start a server: {e}"))?;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    for &addr in &addrs {
        wait_linked(addr, args.engine, Duration::from_secs(15))?;
    }
    log(format!("{instances} server(s) linked to {engine_url}"));
    let sample = |i: usize| procfs::sample(servers[i].pid()).unwrap_or_default();
    report.instances = (0..instances)
        .map(|i| InstanceReport {
            addr: Some(addrs[i]),
            rss_before: sample(i).rss_bytes,
            ..InstanceReport::default()
        })
        .collect();

    // Subscribers: each instance's share split over load processes. The kernel gives every
    // destination its own ephemeral ports (about 28 000), so the first load process of each
    // instance connects from 127.0.0.1 unbound, and further ones to the same instance from
    // 127.0.0.2, .3, ... (bound, so that each has its own ports).
    let base = Instant::now();
    let epoch_us = load::wall_us();
    let mut loads = Vec::new();
    for (i, &addr) in addrs.iter().enumerate() {
        let mut left = subs;
        for k in 0..subs.div_ceil(per_process) as u32 {
            let n = left.min(per_process);
            left -= n;
            let source = Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + k);
            let load_args = LoadArgs {
                addr,
                subs: n,
                source,
                epoch_us,
                read_buf: (args.payload_bytes * 2).clamp(4096, 64 * 1024),
                threads: 1,
            };
            loads.push(
                LoadProcess::spawn(exe, &load_args, i)
                    .map_err(|e| format!("cannot start a load process: {e}"))?,
            );
        }
    }
    let t_connect = Instant::now();
    let deadline = t_connect + Duration::from_secs(60 + report.asked as u64 / 500);
    let connected = loop {
        let (connected, failed) = loads.iter().fold((0, 0), |(c, f), l| {
            let s = l.status();
            (c + s.connected, f + s.failed)
        });
        if connected + failed >= report.asked || Instant::now() >= deadline {
            break connected;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    log(format!(
        "{connected}/{} connected in {:.1} s by {} load process(es)",
        report.asked,
        t_connect.elapsed().as_secs_f64(),
        loads.len()
    ));
    std::thread::sleep(Duration::from_secs(1));
    for (i, inst) in report.instances.iter_mut().enumerate() {
        inst.rss_connected = sample(i).rss_bytes;
        inst.rss_peak = inst.rss_connected;
        inst.held = control::stats(addrs[i])
            .map(|s| control::counter(&s, "subscribers"))
            .unwrap_or(0);
    }

    // What the connections and the engine cost idle (keep-alives, the engine's own timers):
    // context for the figures below, which include what of it goes on while events flow.
    let cpu_idle: Vec<f64> = (0..instances).map(|i| sample(i).cpu_secs).collect();
    let engine_idle = engine.cpu_secs().unwrap_or(f64::NAN);
    let t_idle = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.idle_seconds));

    // Publishing, and the drain, measured from here.
    let cpu0: Vec<f64> = (0..instances).map(|i| sample(i).cpu_secs).collect();
    let engine0 = engine.cpu_secs().unwrap_or(f64::NAN);
    let redis = engine_url
        .strip_prefix("redis://")
        .filter(|_| args.engine == Backend::Redis)
        .and_then(|a| a.parse::<SocketAddr>().ok());
    let commands0 = redis.and_then(|a| commandstats::read(a).ok());
    let idle_wall = t_idle.elapsed().as_secs_f64();
    if args.idle_seconds > 0.0 {
        report.idle_servers_share =
            cpu0.iter().zip(&cpu_idle).map(|(b, a)| b - a).sum::<f64>() / idle_wall;
        report.idle_engine_share = (engine0 - engine_idle) / idle_wall;
    } else {
        report.idle_servers_share = f64::NAN;
        report.idle_engine_share = f64::NAN;
    }
    let loads_cpu = || -> f64 {
        loads
            .iter()
            .filter_map(|l| procfs::sample(l.pid()))
            .map(|s| s.cpu_secs)
            .sum()
    };
    let loads0 = loads_cpu();
    let t0 = Instant::now();
    let events = (args.rate * args.seconds).round().max(1.0) as u64;
    let handle = publisher::start(PublishPlan {
        target: Target {
            addr: addrs[0],
            host: addrs[0].to_string(),
            path: "/publish".into(),
        },
        pace: Pace::Rate(args.rate),
        limit: Limit::Count(events),
        connections: args.publishers.max(1),
        payload_bytes: args.payload_bytes,
        body_template: None,
        rows: false,
        base,
    })
    .map_err(|e| format!("cannot start the publisher: {e}"))?;
    let delivered = || loads.iter().map(|l| l.status().delivered).sum::<u64>();
    let mut next_sample = Instant::now();
    let mut watch_rss = |report: &mut PhaseReport| {
        if Instant::now() >= next_sample {
            for (i, inst) in report.instances.iter_mut().enumerate() {
                inst.rss_peak = inst.rss_peak.max(sample(i).rss_bytes);
            }
            next_sample += Duration::from_secs(1);
        }
    };
    let publish_deadline = t0 + Duration::from_secs_f64(args.seconds * 2.0 + 60.0);
    while !handle.is_finished() {
        if Instant::now() >= publish_deadline {
            return Err("the publisher did not finish in twice its time".into());
        }
        std::thread::sleep(Duration::from_millis(50));
        watch_rss(&mut report);
    }
    let published = handle
        .join()
        .map_err(|_| "the publisher thread panicked".to_owned())?;
    log(format!(
        "published {} in {:.1} s; draining",
        published.accepted,
        published.elapsed.as_secs_f64()
    ));
    let target = published.accepted * connected as u64;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_max);
    let (mut last, mut moved) = (delivered(), Instant::now());
    loop {
        let now = Instant::now();
        let d = delivered();
        if d != last {
            (last, moved) = (d, now);
        }
        // Done when every reader has every event, or nothing arrived for a while.
        if d >= target || now >= drain_deadline || now - moved >= Duration::from_secs(3) {
            break;
        }
        watch_rss(&mut report);
        std::thread::sleep(Duration::from_millis(20));
    }
    report.wall = (moved.max(t0) - t0).as_secs_f64().max(1e-3);
    for (i, inst) in report.instances.iter_mut().enumerate() {
        inst.cpu = sample(i).cpu_secs - cpu0[i];
    }
    report.servers_cpu = report.instances.iter().map(|i| i.cpu).sum();
    report.engine_cpu = engine.cpu_secs().unwrap_or(f64::NAN) - engine0;
    report.loads_cpu = loads_cpu() - loads0;
    if let (Some(addr), Some(before)) = (redis, &commands0) {
        if let Ok(after) = commandstats::read(addr) {
            report.engine_commands = commandstats::per_event(before, &after, published.accepted);
        }
    }

    report.published = published.accepted;
    report.publish_failed = published.failed;
    report.publish_rate = published.accepted as f64 / published.elapsed.as_secs_f64().max(1e-9);
    report.notes.extend(published.errors);
    if report.publish_rate < 0.9 * args.rate {
        report.notes.push(format!(
            "the publisher reached {:.1} of {} ev/s (publish p99 round trip {:.1} ms)",
            report.publish_rate,
            args.rate,
            published.round_trip.quantile(0.99) as f64 / 1000.0
        ));
    }
    for l in &mut loads {
        let summary = l
            .stop(published.accepted, Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
        report.instances[l.instance].delivered += summary.delivered;
        report.loads.merge(&summary);
    }
    drop(loads);
    drop(servers);
    report.expected = published.accepted * report.loads.readers;
    report.lost = report.expected.saturating_sub(report.loads.delivered);
    if let Some(err) = &report.loads.first_error {
        report.notes.push(format!(
            "{} connections failed, {} ended early; first error: {err}",
            report.loads.connect_failures, report.loads.ended_early
        ));
    }
    Ok(report)
}

/// Waits until the server at `addr` reads its engine: its last event id then has the engine's
/// three-part shape (`<epoch>-<a>-<b>`). A server on the SQL log opens the log before it
/// listens, so its ids have the log's two parts (`<epoch>-<position>`) from the start.
fn wait_linked(addr: SocketAddr, engine: Backend, timeout: Duration) -> Result<(), String> {
    let parts = if engine == Backend::Postgres { 1 } else { 2 };
    let deadline = Instant::now() + timeout;
    loop {
        let id = control::stats(addr)
            .ok()
            .and_then(|s| s.get("last_event_id")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        if id.matches('-').count() == parts {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the server at {addr} did not link to its engine within {timeout:?} (last \
                 event id {id:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// p50 and p99 of `h`, milliseconds.
fn quantiles_ms(h: &Histogram) -> (f64, f64) {
    (
        h.quantile(0.5) as f64 / 1000.0,
        h.quantile(0.99) as f64 / 1000.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_fails_on_loss_duplicates_or_missing_subscribers() {
        let complete = PhaseReport {
            label: "3 instances".into(),
            asked: 30,
            published: 5,
            expected: 150,
            loads: Summary {
                readers: 30,
                delivered: 150,
                ..Summary::default()
            },
            ..PhaseReport::default()
        };
        assert_eq!(failure(&complete), None);

        let lossy = PhaseReport {
            lost: 2,
            ..complete.clone()
        };
        assert_eq!(
            failure(&lossy).as_deref(),
            Some("3 instances: 2 deliveries lost")
        );
        let mut doubled = complete.clone();
        doubled.loads.duplicates = 1;
        assert!(failure(&doubled).is_some_and(|f| f.contains("1 duplicated")));
        let mut short = complete.clone();
        short.loads.readers = 29;
        assert!(failure(&short).is_some_and(|f| f.contains("29 of 30 subscribers connected")));
    }
}
