//! One measured run: start (or find) the server, connect the subscribers, publish, drain, and
//! turn what the clients and `/proc` saw into a [`RunReport`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::{self, Pool, PoolPlan, Target};
use crate::procfs::{self, ProcSample};
use crate::publisher::{self, Limit, Pace, PublishPlan};
use crate::server::{Impl, ServeArgs, ServerProcess};
use crate::stats::Histogram;

/// The load of one run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Preset name, for the output.
    pub name: String,
    /// Subscribers that keep reading.
    pub readers: usize,
    /// Subscribers that never read after the response head.
    pub stalled: usize,
    /// What is published; `None` holds the connections idle for `hold`.
    pub publish: Option<PublishSpec>,
    /// How long idle connections are held (to see keep-alives) when nothing is published.
    pub hold: Duration,
    /// Pause after connecting, before memory is measured.
    pub settle: Duration,
    /// Longest wait for the last deliveries after publishing ends.
    pub drain_max: Duration,
    /// Who each event is for.
    pub audience: Audience,
    /// How long the connected subscribers are held idle before publishing, to measure the
    /// server's idle CPU (keep-alives, timers) and report CPU per event without it; zero
    /// measures nothing, and a started server's keep-alive period is the least.
    pub idle_baseline: Duration,
}

/// Who receives each event of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Audience {
    /// Every reader (`POST /publish`, the stream without a topic).
    #[default]
    Everyone,
    /// One reader: reader `i` follows `?topic=users/{i}` and events go to
    /// `POST /users` with `uid` cycling over the readers (the started servers' routes).
    OnePerTopic,
}

/// What is published in a run.
#[derive(Clone, Debug)]
pub struct PublishSpec {
    /// Pace.
    pub pace: Pace,
    /// End.
    pub limit: Limit,
    /// Concurrent publishing connections.
    pub connections: usize,
    /// JSON body size.
    pub payload_bytes: usize,
    /// Bodies made of records, for measuring compression.
    pub rows: bool,
}

/// Which server a run measures.
#[derive(Clone, Debug)]
pub enum ServerSpec {
    /// One started for the run: `sse-bench serve --impl ...`.
    Spawn(Impl),
    /// A server already running (the demo, say).
    External {
        /// Its address.
        addr: SocketAddr,
        /// `Host` header.
        host: String,
        /// Its process, for CPU and memory; found from the listening port if not given.
        pid: Option<u32>,
    },
}

impl ServerSpec {
    /// How the run is labelled.
    pub fn label(&self) -> String {
        match self {
            ServerSpec::Spawn(imp) => imp.to_string(),
            ServerSpec::External { addr, .. } => addr.to_string(),
        }
    }
}

/// How runs are carried out, whatever the scenario.
#[derive(Clone, Debug)]
pub struct Env {
    /// The `sse-bench` binary, to start servers with.
    pub exe: PathBuf,
    /// Settings for started servers (`imp` is set per run).
    pub serve: ServeArgs,
    /// CPUs for started servers (`taskset -c` list); `None` leaves them unpinned.
    pub server_cpus: Option<String>,
    /// CPU cores the load tool may use (to tell when it is saturated).
    pub load_cores: f64,
    /// Client threads.
    pub client_threads: usize,
    /// Connections per loopback source address.
    pub conns_per_addr: usize,
    /// Read buffer per connection.
    pub read_buf: usize,
    /// Path of the SSE endpoint.
    pub events_path: String,
    /// Path of the publish route.
    pub publish_path: String,
    /// A request body for other servers' publish routes (see [`PublishPlan::body_template`]).
    pub body_template: Option<String>,
    /// Open-file limit of this process (inherited by started servers).
    pub nofile: u64,
    /// Print progress on stderr.
    pub verbose: bool,
}

/// Everything measured in one run.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Which server.
    pub label: String,
    /// Connections asked for (readers + stalled).
    pub requested: usize,
    /// Readers that connected.
    pub readers: usize,
    /// Stalled clients that connected.
    pub stalled: usize,
    /// Connections that could not be opened.
    pub connect_failures: usize,
    /// Streams the server ended during the run.
    pub ended_early: usize,
    /// Events accepted by the publish route.
    pub published: u64,
    /// Publish requests that failed.
    pub publish_failed: u64,
    /// Achieved publish rate, events per second.
    pub publish_rate: f64,
    /// Publish round trip p99, microseconds.
    pub publish_rtt_p99: u64,
    /// `published` × readers.
    pub expected: u64,
    /// Distinct events received by readers.
    pub delivered: u64,
    /// `expected − delivered`.
    pub lost: u64,
    /// Events received twice.
    pub duplicates: u64,
    /// `sse-reset` events received.
    pub resets: u64,
    /// Events without a probe of this run.
    pub foreign: u64,
    /// Comments (keep-alives) received.
    pub comments: u64,
    /// Response body bytes the readers read from their sockets.
    pub wire_bytes: u64,
    /// Readers that missed at least one event.
    pub readers_with_loss: usize,
    /// Delivery latency, microseconds.
    pub latency: Histogram,
    /// p99 latency per second of the run (by send time), microseconds.
    pub window_p99: Vec<u64>,
    /// Distinct deliveries per second, from the first publish to the last delivery.
    pub deliveries_per_sec: f64,
    /// Server CPU seconds from connected to drained.
    pub server_cpu: f64,
    /// Server CPU seconds per million deliveries.
    pub cpu_per_million: f64,
    /// Server CPU microseconds per accepted event.
    pub cpu_per_event_us: f64,
    /// Server CPU seconds per second while the subscribers were connected and idle (NaN
    /// when not measured).
    pub idle_cpu_share: f64,
    /// Server CPU microseconds per accepted event, without what the same connections cost
    /// idle over the same time (NaN when the idle cost was not measured).
    pub cpu_per_event_net_us: f64,
    /// The kernel's share of the server's CPU time.
    pub server_sys_share: f64,
    /// Server RSS before any subscriber, bytes.
    pub rss_before: u64,
    /// Server RSS once every subscriber is connected, bytes.
    pub rss_connected: u64,
    /// `(rss_connected − rss_before) / connections`, bytes.
    pub rss_per_conn: f64,
    /// Largest server RSS seen during the run, bytes.
    pub rss_peak: u64,
    /// Server RSS at the end of the run, bytes.
    pub rss_end: u64,
    /// Server RSS once a second from the first publish, bytes.
    pub rss_samples: Vec<u64>,
    /// CPU use of each load-tool thread while events flowed (1.0 = one core).
    pub load_threads: Vec<(String, f64)>,
    /// The load tool used at least 90 % of its cores, or one client thread 90 % of a core: the
    /// figures may be bounded by the client, not the server.
    pub client_saturated: bool,
    /// Remarks (limits hit, errors).
    pub notes: Vec<String>,
}

/// Carries out one run.
pub fn run(server: &ServerSpec, scenario: &Scenario, env: &Env) -> io::Result<RunReport> {
    let mut report = RunReport {
        label: server.label(),
        ..RunReport::default()
    };
    let publishers = scenario.publish.as_ref().map_or(0, |p| p.connections);
    let mut readers = scenario.readers;
    // Both sides need a descriptor per connection, plus some for everything else.
    let budget = (env.nofile as usize).saturating_sub(publishers + scenario.stalled + 64);
    if readers > budget {
        report.notes.push(format!(
            "{readers} readers asked for, {budget} opened: the open-file limit is {} (hard \
             limit {}); raise it with `ulimit -Hn` as root or in limits.conf",
            env.nofile,
            procfs::nofile_hard_limit()
        ));
        readers = budget;
    }
    report.requested = readers + scenario.stalled;

    let (process, addr, host, pid) = match server {
        ServerSpec::Spawn(imp) => {
            let args = ServeArgs {
                imp: *imp,
                ..env.serve.clone()
            };
            let p = ServerProcess::spawn(&env.exe, &args, env.server_cpus.as_deref())?;
            let (addr, pid) = (p.addr, p.pid());
            (Some(p), addr, addr.to_string(), Some(pid))
        }
        ServerSpec::External { addr, host, pid } => {
            let pid = pid.or_else(|| procfs::listener_pid(addr.port()));
            if pid.is_none() {
                report.notes.push(format!(
                    "no process found listening on port {}: no CPU or memory figures (pass \
                     --server-pid)",
                    addr.port()
                ));
            }
            (None, *addr, host.clone(), pid)
        }
    };
    let sample = || pid.and_then(procfs::sample).unwrap_or_default();
    let base = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    report.rss_before = sample().rss_bytes;

    let log = |msg: String| {
        if env.verbose {
            eprintln!("[{}] {msg}", server.label());
        }
    };
    if let Some(pid) = pid {
        log(format!("server pid {pid} at {addr}"));
    }
    let (events_path, publish_path, body_template) = match scenario.audience {
        Audience::Everyone => (
            env.events_path.clone(),
            env.publish_path.clone(),
            env.body_template.clone(),
        ),
        Audience::OnePerTopic => (
            format!("{}?topic=users/{}", env.events_path, client::CONN_INDEX),
            "/users".to_owned(),
            Some(format!(
                r#"{{"uid":{{seq%{}}},"probe":"{{probe}}"}}"#,
                readers.max(1)
            )),
        ),
    };
    let pool = Pool::start(PoolPlan {
        target: Target {
            addr,
            host: host.clone(),
            path: events_path,
        },
        readers,
        stalled: scenario.stalled,
        threads: env.client_threads,
        conns_per_addr: env.conns_per_addr,
        source: std::net::Ipv4Addr::LOCALHOST,
        base,
        read_buf: env.read_buf,
        gzip: matches!(server, ServerSpec::Spawn(Impl::OursGzip)),
    })?;
    let connect_timeout = Duration::from_secs(30 + report.requested as u64 / 500);
    let t_connect = Instant::now();
    let connected = pool.wait_connected(connect_timeout);
    log(format!(
        "{connected}/{} connected in {:.1} s",
        report.requested,
        t_connect.elapsed().as_secs_f64()
    ));
    std::thread::sleep(scenario.settle);
    let connected_sample = sample();
    report.rss_connected = connected_sample.rss_bytes;
    if connected > 0 {
        report.rss_per_conn =
            report.rss_connected.saturating_sub(report.rss_before) as f64 / connected as f64;
    }

    let mut cpu0 = connected_sample;
    report.idle_cpu_share = f64::NAN;
    if !scenario.idle_baseline.is_zero() {
        // At least one keep-alive period: fewer would miss the keep-alives it exists for.
        let idle = scenario.idle_baseline.max(env.serve.keep_alive());
        let t_idle = Instant::now();
        std::thread::sleep(idle);
        let idle_end = sample();
        let wall = t_idle.elapsed().as_secs_f64();
        report.idle_cpu_share = (idle_end.cpu_secs - cpu0.cpu_secs) / wall;
        log(format!(
            "idle for {wall:.1} s: server CPU {:.1} % of a core",
            report.idle_cpu_share * 100.0
        ));
        cpu0 = idle_end;
    }
    let threads0 = procfs::own_threads_cpu("bench-");
    let t0 = Instant::now();
    let mut watch = Watch {
        rss_samples: vec![cpu0.rss_bytes],
        next_sample: t0 + Duration::from_secs(1),
        last_delivered: pool.delivered(),
        last_progress: t0,
    };

    let mut publish_report = None;
    match &scenario.publish {
        Some(spec) => {
            let handle = publisher::start(PublishPlan {
                target: Target {
                    addr,
                    host: host.clone(),
                    path: publish_path,
                },
                pace: spec.pace,
                limit: spec.limit,
                connections: spec.connections,
                payload_bytes: spec.payload_bytes,
                rows: spec.rows,
                body_template,
                base,
            })?;
            while !handle.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
                watch.tick(&pool, &sample);
            }
            let p = handle
                .join()
                .map_err(|_| io::Error::other("the publisher thread panicked"))?;
            log(format!(
                "published {} in {:.2} s; draining",
                p.accepted,
                p.elapsed.as_secs_f64()
            ));
            let readers_now = pool
                .progress
                .connected
                .load(std::sync::atomic::Ordering::Relaxed)
                .saturating_sub(scenario.stalled);
            let target = match scenario.audience {
                Audience::Everyone => p.accepted * readers_now as u64,
                Audience::OnePerTopic => p.accepted,
            };
            let deadline = Instant::now() + scenario.drain_max;
            // Done when every reader has every event, or nothing arrived for a while.
            let quiet = Duration::from_millis(1500).min(scenario.drain_max);
            loop {
                let now = Instant::now();
                watch.tick(&pool, &sample);
                if watch.last_delivered >= target
                    || now >= deadline
                    || now - watch.last_progress >= quiet
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            publish_report = Some(p);
        }
        None => {
            let end = t0 + scenario.hold;
            while Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
                watch.tick(&pool, &sample);
            }
            watch.last_progress = Instant::now();
        }
    }
    let cpu1 = sample();
    let measured_wall = t0.elapsed().as_secs_f64();
    let threads1 = procfs::own_threads_cpu("bench-");
    let last_progress = watch.last_progress;
    let busy_wall = (last_progress - t0).as_secs_f64().max(0.05);
    report.rss_end = cpu1.rss_bytes;
    watch.rss_samples.push(cpu1.rss_bytes);
    report.rss_peak = watch.rss_samples.iter().copied().max().unwrap_or(0);
    report.rss_samples = watch.rss_samples;
    report.server_cpu = cpu1.cpu_secs - cpu0.cpu_secs;
    if report.server_cpu > 0.0 {
        report.server_sys_share = (cpu1.sys_secs - cpu0.sys_secs) / report.server_cpu;
    }

    let pool_report = pool.stop();
    drop(process);

    summarize_load(&mut report, &threads0, &threads1, busy_wall, env.load_cores);
    let pace = scenario.publish.as_ref().map(|p| p.pace);
    summarize_deliveries(
        &mut report,
        pool_report,
        publish_report,
        (pace, scenario.audience),
        last_progress,
        base,
    );
    if report.delivered > 0 {
        report.cpu_per_million = report.server_cpu / report.delivered as f64 * 1e6;
    }
    if report.published > 0 {
        report.cpu_per_event_us = report.server_cpu / report.published as f64 * 1e6;
        let idle = report.idle_cpu_share * measured_wall;
        report.cpu_per_event_net_us =
            (report.server_cpu - idle).max(0.0) / report.published as f64 * 1e6;
    } else {
        report.cpu_per_event_net_us = f64::NAN;
    }
    if pid.is_none() {
        report.server_cpu = f64::NAN;
        report.cpu_per_million = f64::NAN;
        report.cpu_per_event_us = f64::NAN;
        report.cpu_per_event_net_us = f64::NAN;
    }
    Ok(report)
}

fn summarize_load(
    report: &mut RunReport,
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    wall: f64,
    cores: f64,
) {
    let mut threads: Vec<(String, f64)> = after
        .iter()
        .map(|(name, cpu)| {
            let start = before.get(name).copied().unwrap_or(0.0);
            let short = name.split('#').next().unwrap_or(name).to_owned();
            (short, (cpu - start) / wall)
        })
        .collect();
    threads.sort_by(|a, b| a.0.cmp(&b.0));
    let total: f64 = threads.iter().map(|t| t.1).sum();
    report.client_saturated = total >= 0.9 * cores
        || threads
            .iter()
            .any(|(name, busy)| name.starts_with(client::THREAD_PREFIX) && *busy >= 0.9);
    report.load_threads = threads;
}

fn summarize_deliveries(
    report: &mut RunReport,
    pool: client::PoolReport,
    publish: Option<publisher::PublishReport>,
    (pace, audience): (Option<Pace>, Audience),
    last_delivery: Instant,
    base: Instant,
) {
    let published = publish.as_ref().map_or(0, |p| p.accepted);
    report.published = published;
    let readers = pool
        .conns
        .iter()
        .filter(|c| c.connected && !c.stalled)
        .count() as u64;
    // What each reader should get (with one topic per reader, at least its share).
    let per_reader = match audience {
        Audience::Everyone => published,
        Audience::OnePerTopic => published / readers.max(1),
    };
    for c in &pool.conns {
        if !c.connected {
            report.connect_failures += 1;
            continue;
        }
        if c.ended_early {
            report.ended_early += 1;
        }
        report.comments += c.comments;
        if c.stalled {
            report.stalled += 1;
            continue;
        }
        report.readers += 1;
        report.wire_bytes += c.wire_bytes;
        report.delivered += c.unique;
        report.duplicates += c.duplicates;
        report.resets += c.resets;
        report.foreign += c.foreign;
        if c.unique < per_reader {
            report.readers_with_loss += 1;
        }
    }
    if let Some(err) = pool.conns.iter().find_map(|c| c.error.as_ref()) {
        if report.connect_failures > 0 || report.ended_early > 0 {
            report.notes.push(format!(
                "{} connections failed, {} ended early; first error: {err}",
                report.connect_failures, report.ended_early
            ));
        }
    }
    report.expected = match audience {
        Audience::Everyone => published * report.readers as u64,
        Audience::OnePerTopic if report.readers > 0 => published,
        Audience::OnePerTopic => 0,
    };
    report.lost = report.expected.saturating_sub(report.delivered);
    report.latency = pool.latency;
    if let Some(p) = publish {
        report.publish_failed = p.failed;
        report.publish_rate = p.accepted as f64 / p.elapsed.as_secs_f64().max(1e-9);
        report.publish_rtt_p99 = p.round_trip.quantile(0.99);
        if let Some(Pace::Rate(rate)) = pace {
            if report.publish_rate < 0.9 * rate {
                report.notes.push(format!(
                    "publishers reached {:.0} of {rate} ev/s: the server answered publish \
                     requests too slowly (p99 round trip {:.1} ms); it is saturated",
                    report.publish_rate,
                    report.publish_rtt_p99 as f64 / 1000.0
                ));
            }
        }
        report.notes.extend(p.errors);
        let first = p.first_sent_us / 1_000_000;
        report.window_p99 = pool
            .windows
            .iter()
            .skip(first as usize)
            .map(|h| h.quantile(0.99))
            .collect();
        let span = last_delivery
            .saturating_duration_since(base + Duration::from_micros(p.first_sent_us))
            .as_secs_f64();
        if span > 0.0 {
            report.deliveries_per_sec = report.delivered as f64 / span;
        }
    }
}

/// What the load tool follows while events flow: server memory once a second, and when the
/// last new delivery arrived.
struct Watch {
    rss_samples: Vec<u64>,
    next_sample: Instant,
    last_delivered: u64,
    last_progress: Instant,
}

impl Watch {
    fn tick(&mut self, pool: &Pool, sample: &dyn Fn() -> ProcSample) {
        let now = Instant::now();
        if now >= self.next_sample {
            self.rss_samples.push(sample().rss_bytes);
            self.next_sample += Duration::from_secs(1);
        }
        let d = pool.delivered();
        if d != self.last_delivered {
            self.last_delivered = d;
            self.last_progress = now;
        }
    }
}
