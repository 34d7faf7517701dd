//! `sse-bench engines --backend memory,redis,nats`: two instances sharing one event log,
//! subscribers on both, publishing on one; cross-instance delivery latency, publish
//! throughput, CPU per event and loss through an engine outage, for each backend in one run.
//!
//! Both instances live in this process (an engine's cost is the same in or out of it), with
//! their subscribers' streams read on one thread (`bench-sub`). Redis and NATS run as private
//! servers on free ports, so the outage is real: the server is stopped and started again.
//! `postgres` is the SQL event log alone on PostgreSQL (a schema made for the run, each
//! instance with its own pool, woken by `LISTEN`/`NOTIFY`); `postgres-redis` is that log
//! relayed into a private Redis, whose lag is sampled during the steady phase.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sse_core::testing::MemoryStore;
use sse_core::{Broadcaster, BroadcasterBuilder};

use crate::procfs;
use crate::stats::{Histogram, SeqTally};

/// Options of the `engines` command.
#[derive(Debug, clap::Args)]
pub struct EnginesArgs {
    /// Backends to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "memory,redis,nats")]
    backend: Vec<Backend>,
    /// Subscribers on each of the two instances.
    #[arg(long, default_value_t = 1000)]
    subs: usize,
    /// Events per second in the steady phase.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of steady publishing.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Events published as fast as possible for the throughput figure.
    #[arg(long, default_value_t = 20_000)]
    burst: u64,
    /// Stops the engine for 2 s in the middle of the steady phase (then starts it again;
    /// Redis, NATS and memory only).
    #[arg(long)]
    outage: bool,
    /// The PostgreSQL database of `postgres` backends (a schema of its own is made and
    /// dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
}

/// An event log engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// sse-core's in-memory test engine, in this process.
    Memory,
    /// Redis Streams.
    Redis,
    /// NATS JetStream.
    Nats,
    /// The SQL event log alone, on PostgreSQL (`--postgres-url`).
    Postgres,
    /// The SQL event log on PostgreSQL, relayed into a private Redis.
    PostgresRedis,
}

/// One backend's figures.
struct Figures {
    backend: Backend,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    throughput: f64,
    cpu_us_per_event: f64,
    engine_cpu_us_per_event: Option<f64>,
    /// The most events committed but not yet acknowledged by the relay's engine, sampled
    /// every 10 ms of the steady phase (relayed backends).
    relay_lag_max: Option<u64>,
    published: u64,
    lost: u64,
    resets: u64,
}

/// Measures each backend in turn and prints one table.
pub fn main(args: &EnginesArgs) -> std::process::ExitCode {
    procfs::raise_nofile_limit();
    let mut all = Vec::new();
    for &backend in &args.backend {
        eprintln!("== {backend:?}");
        match measure(backend, args) {
            Ok(f) => all.push(f),
            Err(err) => {
                eprintln!("{backend:?}: {err}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{} subscribers per instance, {} events/s for {} s{}; latency: publish on A to a subscriber on B",
        args.subs,
        args.rate,
        args.seconds,
        if args.outage { ", engine stopped for 2 s" } else { "" }
    );
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>12} {:>12} {:>12} {:>9} {:>6} {:>7} {:>10}",
        "backend",
        "p50 us",
        "p99 us",
        "max us",
        "burst ev/s",
        "cpu us/ev",
        "engine us/ev",
        "events",
        "lost",
        "resets",
        "relay lag"
    );
    for f in &all {
        println!(
            "{:<14} {:>9} {:>9} {:>9} {:>12.0} {:>12.1} {:>12} {:>9} {:>6} {:>7} {:>10}",
            clap::ValueEnum::to_possible_value(&f.backend)
                .map_or_else(|| format!("{:?}", f.backend), |v| v.get_name().to_owned()),
            f.p50_us,
            f.p99_us,
            f.max_us,
            f.throughput,
            f.cpu_us_per_event,
            f.engine_cpu_us_per_event
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}")),
            f.published,
            f.lost,
            f.resets,
            f.relay_lag_max
                .map_or_else(|| "-".to_owned(), |l| format!("max {l}")),
        );
    }
    std::process::ExitCode::SUCCESS
}

/// How many distinct events each subscriber of B has so far.
type Progress = Arc<Vec<AtomicU64>>;

/// What the subscribers on instance B saw.
#[derive(Default)]
struct Seen {
    latency: Histogram,
    tallies: Vec<SeqTally>,
    resets: u64,
}

fn measure(backend: Backend, args: &EnginesArgs) -> Result<Figures, String> {
    if args.outage && !engine_can_stop(backend) {
        return Err("--outage stops a server engine or the memory store, not PostgreSQL".into());
    }
    let mut engine = Engine::start_with(backend, &args.postgres_url)?;
    let steady = (args.rate * args.seconds) as u64;
    // The burst measures how fast events cross, not the outbox bound (the engine suite tests
    // that): A's outbox holds every event of the run.
    let a = engine
        .builder()?
        .keep_alive(None)
        .outbox(
            usize::try_from(steady + args.burst)
                .unwrap_or(usize::MAX)
                .max(10_000),
        )
        .build();
    let b = engine.builder()?.keep_alive(None).build();
    for events in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        // The engines number entries `<epoch>-<ms>-<n>` once connected; the SQL log's
        // `<epoch>-<seq>` is known as it opens.
        while engine.sql().is_none() && events.last_event_id().to_string().matches('-').count() != 2
        {
            if Instant::now() > deadline {
                return Err("the instance did not connect to its engine".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let origin = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let done = Arc::new(AtomicBool::new(false));
    let progress: Progress = Arc::new((0..args.subs).map(|_| AtomicU64::new(0)).collect());
    let readers = spawn_subscribers(
        &a,
        &b,
        (args.subs, steady),
        origin,
        (seen.clone(), progress.clone()),
        done.clone(),
    )?;
    std::thread::sleep(Duration::from_millis(300));

    // Steady phase: latency, CPU, loss (and the outage).
    let cpu_before = procfs::sample(std::process::id()).map_or(0.0, |s| s.cpu_secs);
    let engine_before = engine.cpu_secs();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1.0));
    let started = Instant::now();
    let mut stopped: Option<Instant> = None;
    let mut relay_lag_max: Option<u64> = None;
    let mut sampled = Instant::now();
    for seq in 1..=steady {
        if backend == Backend::PostgresRedis && sampled.elapsed() >= Duration::from_millis(10) {
            sampled = Instant::now();
            let lag = a.stats().engine.relay_lag.max(b.stats().engine.relay_lag);
            relay_lag_max = Some(relay_lag_max.unwrap_or(0).max(lag));
        }
        if args.outage && seq == steady / 3 {
            engine.stop();
            stopped = Some(Instant::now());
        }
        if stopped.is_some_and(|t| t.elapsed() >= Duration::from_secs(2)) {
            engine.restart()?;
            stopped = None;
        }
        let at = started + interval * u32::try_from(seq).unwrap_or(u32::MAX);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = origin.elapsed().as_micros() as u64;
        a.publish("tick", &serde_json::json!({ "s": seq, "t": t }))
            .map_err(|e| e.to_string())?;
    }
    if stopped.is_some() {
        engine.restart()?;
    }
    wait_for(&progress, steady, Duration::from_secs(15));
    let cpu_after = procfs::sample(std::process::id()).map_or(0.0, |s| s.cpu_secs);
    let engine_after = engine.cpu_secs();
    let lost = steady.saturating_sub(fewest(&progress));

    // Burst phase: how fast events cross from A to every subscriber of B.
    let burst_start = Instant::now();
    for i in 1..=args.burst {
        let t = origin.elapsed().as_micros() as u64;
        a.publish("tick", &serde_json::json!({ "s": steady + i, "t": t }))
            .map_err(|e| e.to_string())?;
    }
    let (arrived, at) = wait_for(&progress, steady + args.burst, Duration::from_secs(60));
    let burst_secs = at.duration_since(burst_start).as_secs_f64().max(1e-3);
    let throughput = arrived.saturating_sub(steady) as f64 / burst_secs;

    eprintln!("instance B: {:?}", b.stats());
    done.store(true, Ordering::SeqCst);
    a.shutdown();
    b.shutdown();
    let _ = readers.join();
    let (latency, resets) = {
        let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        (seen.latency.clone(), seen.resets)
    };
    let events = steady as f64;
    Ok(Figures {
        backend,
        p50_us: latency.quantile(0.50),
        p99_us: latency.quantile(0.99),
        max_us: latency.max(),
        throughput,
        cpu_us_per_event: (cpu_after - cpu_before) * 1e6 / events,
        engine_cpu_us_per_event: engine_before
            .zip(engine_after)
            .map(|(b, a)| (a - b) * 1e6 / events),
        relay_lag_max,
        published: steady,
        lost,
        resets,
    })
}

fn fewest(progress: &Progress) -> u64 {
    progress
        .iter()
        .map(|p| p.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0)
}

/// Waits until every subscriber of B has `total` distinct events, or nothing arrived for 3 s,
/// or `limit`; returns the fewest any has, and when that count was reached.
fn wait_for(progress: &Progress, total: u64, limit: Duration) -> (u64, Instant) {
    let deadline = Instant::now() + limit;
    let (mut last, mut moved) = (fewest(progress), Instant::now());
    loop {
        let fewest = fewest(progress);
        if fewest != last {
            (last, moved) = (fewest, Instant::now());
        }
        if fewest >= total || Instant::now() > deadline || moved.elapsed() > Duration::from_secs(3)
        {
            return (fewest, moved);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `subs` subscribers on each instance, read on one thread; B's record latency and loss.
fn spawn_subscribers(
    a: &Broadcaster,
    b: &Broadcaster,
    (subs, steady): (usize, u64),
    origin: Instant,
    (seen, progress): (Arc<Mutex<Seen>>, Progress),
    done: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let (a, b) = (a.clone(), b.clone());
    std::thread::Builder::new()
        .name("bench-sub".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let local = tokio::task::LocalSet::new();
                // Each task merges what it saw when its stream ends: wait for all of them, or
                // a lagging subscriber's figures would be lost with the unfinished task.
                let unfinished = std::rc::Rc::new(std::cell::Cell::new(0usize));
                for (events, cross) in [(&a, false), (&b, true)] {
                    for _ in 0..subs {
                        let Some(mut stream) = events.subscribe(None) else {
                            continue;
                        };
                        let (seen, done, progress) = (seen.clone(), done.clone(), progress.clone());
                        let unfinished = unfinished.clone();
                        unfinished.set(unfinished.get() + 1);
                        local.spawn_local(async move {
                            let index = if cross {
                                let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
                                s.tallies.push(SeqTally::default());
                                Some(s.tallies.len() - 1)
                            } else {
                                None
                            };
                            // Latency from the first few of B's subscribers; loss from all.
                            let probe = index.is_some_and(|i| i < PROBES);
                            let mut tally = SeqTally::default();
                            let mut latency = Histogram::default();
                            let mut resets = 0;
                            while let Some(Ok(chunk)) = stream.next().await {
                                if done.load(Ordering::Relaxed) {
                                    break;
                                }
                                let Some(index) = index else { continue };
                                let now = origin.elapsed().as_micros() as u64;
                                for line in chunk.split(|&c| c == b'\n') {
                                    if line.starts_with(b"event: sse-reset") {
                                        resets += 1;
                                    }
                                    let Some(data) = line.strip_prefix(b"data: ") else {
                                        continue;
                                    };
                                    let Some(seq) = number_after(data, b"\"s\":") else {
                                        continue;
                                    };
                                    // Latency is the steady phase's; the burst's is a backlog.
                                    if tally.record(seq) && probe && seq <= steady {
                                        if let Some(t) = number_after(data, b"\"t\":") {
                                            latency.record(now.saturating_sub(t));
                                        }
                                    }
                                }
                                progress[index].store(tally.unique(), Ordering::Relaxed);
                            }
                            if let Some(index) = index {
                                let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
                                s.tallies[index] = tally;
                                s.latency.merge(&latency);
                                s.resets += resets;
                            }
                            unfinished.set(unfinished.get() - 1);
                        });
                    }
                }
                local
                    .run_until(async {
                        while !done.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                        while unfinished.get() > 0 && tokio::time::Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    })
                    .await;
            });
        })
        .map_err(|e| e.to_string())
}

/// Subscribers of B whose latency is recorded (all of B's count for loss).
const PROBES: usize = 50;

/// The decimal number right after `key` in `data`.
fn number_after(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(data, key)? + key.len();
    let digits = data[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(&data[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn engine_can_stop(backend: Backend) -> bool {
    matches!(backend, Backend::Memory | Backend::Redis | Backend::Nats)
}

/// The SQL event log of a `postgres` backend: a schema made for the run, and one log per
/// instance (each with its own pool, opened on a runtime kept for the run).
pub(crate) struct Sql {
    runtime: tokio::runtime::Runtime,
    url: String,
    schema: String,
    logs: Vec<sse_core::sql::EventLog>,
    /// The Redis that `postgres-redis` relays into.
    relay: Option<Box<Engine>>,
}

impl Sql {
    fn start(url: &str, relay: bool) -> Result<Self, String> {
        let schema = format!("sse_bench_engines_{}", std::process::id());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let logs = runtime.block_on(async {
            let admin = sqlx::PgPool::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            for sql in [
                format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                format!("CREATE SCHEMA {schema}"),
            ] {
                sqlx::query(&sql)
                    .execute(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let options: sqlx::postgres::PgConnectOptions =
                url.parse().map_err(|e: sqlx::Error| e.to_string())?;
            let mut logs = Vec::new();
            for _ in 0..2 {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(options.clone().options([("search_path", schema.as_str())]))
                    .await
                    .map_err(|e| e.to_string())?;
                sse_core::sql::EventLog::ensure_schema(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
                logs.push(
                    sse_core::sql::EventLog::open(&pool)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            Ok::<_, String>(logs)
        })?;
        let relay = if relay {
            Some(Box::new(Engine::start(Backend::Redis)?))
        } else {
            None
        };
        Ok(Sql {
            runtime,
            url: url.to_owned(),
            schema,
            logs,
            relay,
        })
    }
}

impl Drop for Sql {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = self.runtime.block_on(async move {
            let admin = sqlx::PgPool::connect(&url).await?;
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&admin)
                .await
        });
    }
}

/// The engine of one backend: an in-memory store, a private server, or the SQL log.
pub(crate) enum Engine {
    Memory(Arc<MemoryStore>),
    Sql(Box<Sql>, std::sync::atomic::AtomicUsize),
    Server {
        backend: Backend,
        port: u16,
        dir: std::path::PathBuf,
        child: Option<Child>,
        stream: String,
    },
}

impl Engine {
    /// Starts the backend's engine: a private server on a free port (stopped when dropped).
    pub(crate) fn start(backend: Backend) -> Result<Self, String> {
        Self::start_with(backend, "postgres://postgres@127.0.0.1:5432/test")
    }

    /// [`Engine::start`], the SQL log's database at `postgres_url`.
    pub(crate) fn start_with(backend: Backend, postgres_url: &str) -> Result<Self, String> {
        match backend {
            Backend::Memory => return Ok(Engine::Memory(MemoryStore::new(100_000))),
            Backend::Postgres | Backend::PostgresRedis => {
                let sql = Sql::start(postgres_url, backend == Backend::PostgresRedis)?;
                return Ok(Engine::Sql(Box::new(sql), 0.into()));
            }
            Backend::Redis | Backend::Nats => {}
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut engine = Engine::Server {
            backend,
            port,
            dir: std::env::temp_dir().join(format!("sse-bench-{port}")),
            child: None,
            stream: format!("sse-bench-{}", std::process::id()),
        };
        engine.restart()?;
        Ok(engine)
    }

    /// The database URL and schema of a `postgres` backend, for servers in other processes.
    pub(crate) fn postgres(&self) -> Option<(String, String)> {
        self.sql().map(|sql| (sql.url.clone(), sql.schema.clone()))
    }

    /// The SQL log, for `postgres` backends.
    fn sql(&self) -> Option<&Sql> {
        match self {
            Engine::Sql(sql, _) => Some(sql),
            _ => None,
        }
    }

    fn builder(&self) -> Result<BroadcasterBuilder, String> {
        let builder = Broadcaster::builder();
        Ok(match self {
            Engine::Memory(store) => builder.memory_log(store),
            Engine::Sql(sql, next) => {
                let i = next.fetch_add(1, Ordering::Relaxed) % sql.logs.len();
                let builder = builder.event_log(&sql.logs[i]);
                match &sql.relay {
                    Some(redis) => redis.builder_on(builder)?,
                    None => builder,
                }
            }
            Engine::Server { .. } => self.builder_on(builder)?,
        })
    }

    /// `builder` on this private server.
    fn builder_on(&self, builder: BroadcasterBuilder) -> Result<BroadcasterBuilder, String> {
        match self {
            Engine::Server {
                backend: Backend::Redis,
                port,
                stream,
                ..
            } => builder
                .redis(&format!("redis://127.0.0.1:{port}"), stream)
                .map_err(|e| e.to_string()),
            Engine::Server { port, stream, .. } => builder
                .nats(&format!("nats://127.0.0.1:{port}"), stream)
                .map_err(|e| e.to_string()),
            _ => Err("not a server engine".into()),
        }
    }

    /// The private server's URL, e.g. `redis://127.0.0.1:PORT` (`None` in memory).
    pub(crate) fn url(&self) -> Option<String> {
        match self {
            Engine::Memory(_) | Engine::Sql(..) => None,
            Engine::Server { backend, port, .. } => {
                let scheme = if *backend == Backend::Redis {
                    "redis"
                } else {
                    "nats"
                };
                Some(format!("{scheme}://127.0.0.1:{port}"))
            }
        }
    }

    /// The engine server's CPU seconds so far.
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        match self {
            Engine::Server {
                child: Some(child), ..
            } => procfs::sample(child.id()).map(|s| s.cpu_secs),
            Engine::Sql(sql, _) => Some(
                crate::tx::postgres_cpu()
                    + sql.relay.as_ref().and_then(|r| r.cpu_secs()).unwrap_or(0.0),
            ),
            _ => None,
        }
    }

    fn stop(&mut self) {
        match self {
            Engine::Memory(store) => {
                for i in 0..2 {
                    store.set_online(i, false);
                }
            }
            Engine::Sql(..) => {}
            Engine::Server { child, .. } => {
                if let Some(mut child) = child.take() {
                    let _ = Command::new("kill").arg(child.id().to_string()).status();
                    let _ = child.wait();
                }
            }
        }
    }

    /// Starts it again (NATS with its storage; Redis, without persistence, empty).
    fn restart(&mut self) -> Result<(), String> {
        self.stop();
        match self {
            Engine::Memory(store) => {
                for i in 0..2 {
                    store.set_online(i, true);
                }
                Ok(())
            }
            Engine::Sql(..) => Ok(()),
            Engine::Server {
                backend,
                port,
                dir,
                child,
                ..
            } => {
                let port_s = port.to_string();
                let mut command = if *backend == Backend::Redis {
                    let mut c = Command::new("redis-server");
                    c.args(["--port", &port_s, "--bind", "127.0.0.1", "--save", ""])
                        .args(["--appendonly", "no"]);
                    c
                } else {
                    let mut c = Command::new("nats-server");
                    c.args(["-a", "127.0.0.1", "-p", &port_s, "-js", "-sd"])
                        .arg(&*dir);
                    c
                };
                let spawned = command
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("cannot start the {backend:?} server: {e}"))?;
                *child = Some(spawned);
                let deadline = Instant::now() + Duration::from_secs(10);
                while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                    if Instant::now() > deadline {
                        return Err(format!("the {backend:?} server did not start"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(())
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
        if let Engine::Server { dir, .. } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
