//! `sse-bench tx --db sqlite,postgres`: what writing the event in the handler's own
//! transaction costs. One server process (pinned like the other presets' servers) has two
//! routes doing the same work, inserting one row and answering the row as an event:
//!
//! - `POST /plain`: `#[emit_event("plain")]`, the row inserted through the pool (its own
//!   transaction), the event published after the handler returns, from memory, and written to
//!   the same event log by the engine's outbox a moment later: today's non-transactional path;
//! - `POST /tx`: `#[emit_event("tx", transactional)]` with a `sql::Tx`: the row and the event
//!   written in one transaction, committed before the response;
//! - `POST /memory`: the plain handler on a broadcaster without the log (the in-memory
//!   history only): what an application without durable events pays, for reference.
//!
//! Keep-alive connections post at a fixed rate, the two routes taking turns in rounds; each
//! request's latency is measured from when it was due (so a slow server is not hidden by
//! requests that were sent late), and the server's CPU per request from `/proc`. At the end
//! the event log must hold one event per answered request of each route.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use actix_web::web::{self, Json};
use actix_web::{App, HttpServer};
use serde::{Deserialize, Serialize};
use sse_core::sql::{Connection, EventLog, Tx, TxError};
use sse_core::{emit_event, Broadcaster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procfs;
use crate::stats::Histogram;

/// The PostgreSQL database the preset makes its schema in.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Options of the `tx` command.
#[derive(Debug, clap::Args)]
pub struct TxArgs {
    /// Databases to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    db: Vec<Db>,
    /// Requests per second, over all connections.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Keep-alive connections posting.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Rounds of (plain, transactional), the order alternating.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// PostgreSQL database for `--db postgres` (a schema of its own is made and dropped).
    #[arg(long, default_value = POSTGRES_URL)]
    postgres_url: String,
}

/// A database of the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Db {
    /// An SQLite file in the temporary directory.
    Sqlite,
    /// PostgreSQL, in a schema made for the run.
    Postgres,
}

/// Options of the server process (`serve-tx`, started by `tx`).
#[derive(Debug, clap::Args)]
pub struct ServeTxArgs {
    /// `sqlite://<file>` or `postgres://...`.
    #[arg(long)]
    db: String,
    /// With PostgreSQL: the schema the tables live in.
    #[arg(long)]
    schema: Option<String>,
}

/// The row each request writes and the event it publishes.
#[derive(Debug, Serialize, Deserialize)]
struct Tick {
    seq: u64,
    body: String,
}

/// The application's pool, as the plain handler uses it.
#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

const INSERT_SQLITE: &str = "INSERT INTO bench_rows (seq, body) VALUES (?, ?)";
const INSERT_POSTGRES: &str = "INSERT INTO bench_rows (seq, body) VALUES ($1, $2)";

/// The row through the pool, then the event from memory after the handler returns.
#[emit_event("plain")]
async fn plain(pool: web::Data<Pool>, body: Json<Tick>) -> Result<Json<Tick>, TxError> {
    insert(&pool, body).await
}

/// [`plain`] on the broadcaster without the log.
#[emit_event("memory")]
async fn memory(pool: web::Data<Pool>, body: Json<Tick>) -> Result<Json<Tick>, TxError> {
    insert(&pool, body).await
}

/// `/memory`: [`memory`] publishing to the scope's broadcaster (the handlers of this thread
/// publish to the log's by default).
async fn memory_route(
    events: web::Data<Broadcaster>,
    pool: web::Data<Pool>,
    body: Json<Tick>,
) -> Result<Json<Tick>, TxError> {
    events.scope(memory(pool, body)).await
}

async fn insert(pool: &Pool, body: Json<Tick>) -> Result<Json<Tick>, TxError> {
    let seq = i64::try_from(body.seq).unwrap_or(i64::MAX);
    let done = match pool {
        Pool::Sqlite(p) => sqlx::query(INSERT_SQLITE)
            .bind(seq)
            .bind(&body.body)
            .execute(p)
            .await
            .map(drop),
        Pool::Postgres(p) => sqlx::query(INSERT_POSTGRES)
            .bind(seq)
            .bind(&body.body)
            .execute(p)
            .await
            .map(drop),
    };
    done.map_err(|e| TxError::Database(e.into()))?;
    Ok(body)
}

/// The row and the event in one transaction, committed by the macro.
#[emit_event("tx", transactional)]
async fn transactional(tx: Tx, body: Json<Tick>) -> Result<Json<Tick>, TxError> {
    let seq = i64::try_from(body.seq).unwrap_or(i64::MAX);
    let mut held = tx.conn().await?;
    let done = match held.get() {
        Connection::Sqlite(c) => sqlx::query(INSERT_SQLITE)
            .bind(seq)
            .bind(&body.body)
            .execute(c)
            .await
            .map(drop),
        Connection::Postgres(c) => sqlx::query(INSERT_POSTGRES)
            .bind(seq)
            .bind(&body.body)
            .execute(c)
            .await
            .map(drop),
        _ => return Err(TxError::Ended),
    };
    done.map_err(|e| TxError::Database(e.into()))?;
    drop(held);
    Ok(body)
}

/// Runs the server of the `tx` preset: prints `listening on <addr>`, exits when stdin ends.
pub fn serve(args: ServeTxArgs) -> std::io::Result<()> {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    actix_web::rt::System::new().block_on(async move {
        let (pool, log) = open(&args.db, args.schema.as_deref())
            .await
            .map_err(std::io::Error::other)?;
        let events = Broadcaster::builder()
            .event_log(&log)
            .keep_alive(None)
            .build();
        let in_memory = Broadcaster::builder().keep_alive(None).build();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(pool.clone()))
                .service(
                    web::scope("/memory")
                        .app_data(web::Data::new(in_memory.clone()))
                        .route("", web::post().to(memory_route)),
                )
                .configure(events.service("/events"))
                .route("/plain", web::post().to(plain))
                .route("/tx", web::post().to(transactional))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))?;
        let addr = server.addrs()[0];
        println!("listening on {addr}");
        server.run().await
    })
}

/// Connects, makes the tables (the application's and the event log's) and opens the log.
async fn open(url: &str, schema: Option<&str>) -> Result<(Pool, EventLog), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    if url.starts_with("sqlite:") {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().map_err(|e| err(&e))?;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(
                options
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5)),
            )
            .await
            .map_err(|e| err(&e))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_rows (seq INTEGER NOT NULL, body TEXT NOT NULL)",
        )
        .execute(&pool)
        .await
        .map_err(|e| err(&e))?;
        EventLog::ensure_schema(&pool).await.map_err(|e| err(&e))?;
        let log = EventLog::open(&pool).await.map_err(|e| err(&e))?;
        return Ok((Pool::Sqlite(pool), log));
    }
    let pool = pg_pool(url, schema, 16).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_rows (seq BIGINT NOT NULL, body TEXT NOT NULL)")
        .execute(&pool)
        .await
        .map_err(|e| err(&e))?;
    EventLog::ensure_schema(&pool).await.map_err(|e| err(&e))?;
    let log = EventLog::open(&pool).await.map_err(|e| err(&e))?;
    Ok((Pool::Postgres(pool), log))
}

/// The event log alone on PostgreSQL at `url` (in `schema`), its table made if missing: for
/// servers of other presets that run on the SQL log.
pub(crate) async fn open_log(url: &str, schema: Option<&str>) -> Result<EventLog, String> {
    let pool = pg_pool(url, schema, 8).await?;
    EventLog::ensure_schema(&pool)
        .await
        .map_err(|e| e.to_string())?;
    EventLog::open(&pool).await.map_err(|e| e.to_string())
}

/// A pool on PostgreSQL at `url`, its search path `schema` when given.
async fn pg_pool(url: &str, schema: Option<&str>, max: u32) -> Result<sqlx::PgPool, String> {
    let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| format!("{e}"))?;
    let options = match schema {
        Some(s) => options.options([("search_path", s)]),
        None => options,
    };
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))
}

/// One measured phase of one route.
struct Phase {
    route: &'static str,
    ok: u64,
    failed: u64,
    latency: Histogram,
    cpu_secs: f64,
    /// CPU of every `postgres` process of the machine over the phase (0 with SQLite).
    db_cpu_secs: f64,
    wall_secs: f64,
}

/// CPU seconds of every process named `postgres` (the server and its backends).
pub(crate) fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| procfs::sample(pid).map(|s| s.cpu_secs))
        .sum()
}

/// Runs the preset and prints one table per database.
pub fn main(args: &TxArgs) -> std::process::ExitCode {
    let mut failed = false;
    for &db in &args.db {
        match measure(db, args) {
            Ok(ok) => failed |= !ok,
            Err(err) => {
                eprintln!("{db:?}: {err}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// The database of one run, removed at the end.
struct Database {
    url: String,
    schema: Option<String>,
    file: Option<PathBuf>,
    admin: Option<String>,
}

impl Database {
    fn make(db: Db, args: &TxArgs) -> Result<Self, String> {
        let tag = format!("sse_bench_tx_{}", std::process::id());
        Ok(match db {
            Db::Sqlite => {
                let file = std::env::temp_dir().join(format!("{tag}.db"));
                let _ = std::fs::remove_file(&file);
                Database {
                    url: format!("sqlite://{}", file.display()),
                    schema: None,
                    file: Some(file),
                    admin: None,
                }
            }
            Db::Postgres => {
                psql(
                    &args.postgres_url,
                    &format!("DROP SCHEMA IF EXISTS {tag} CASCADE; CREATE SCHEMA {tag}"),
                )?;
                Database {
                    url: args.postgres_url.clone(),
                    schema: Some(tag),
                    file: None,
                    admin: Some(args.postgres_url.clone()),
                }
            }
        })
    }

    /// How many rows `sql` counts.
    fn count(&self, table_and_filter: &str) -> Result<u64, String> {
        let out = match (&self.admin, &self.schema, &self.file) {
            (Some(url), Some(schema), _) => Command::new("psql")
                .args([url.as_str(), "-tAc"])
                .arg(format!("SELECT count(*) FROM {schema}.{table_and_filter}"))
                .output(),
            (_, _, Some(file)) => Command::new("sqlite3")
                .arg(file)
                .arg(format!("SELECT count(*) FROM {table_and_filter}"))
                .output(),
            _ => return Err("no database".into()),
        }
        .map_err(|e| format!("cannot count rows (psql/sqlite3): {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("count failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let (Some(url), Some(schema)) = (&self.admin, &self.schema) {
            let _ = psql(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([url, "-qc", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(db: &Database) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let pinned = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
            && Command::new("taskset").arg("-V").output().is_ok();
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.arg("serve-tx").args(["--db", &db.url]);
        if let Some(schema) = &db.schema {
            cmd.args(["--schema", schema]);
        }
        let (child, addr) = crate::server::spawn_listening(&mut cmd)?;
        Ok(Server { child, addr })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn measure(db: Db, args: &TxArgs) -> Result<bool, String> {
    let database = Database::make(db, args)?;
    let server = Server::start(&database)?;
    let pid = server.child.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut seq = 0;
    // Warm up both routes (connections, statements, pages).
    for route in ["memory", "plain", "tx"] {
        rt.block_on(load(
            server.addr,
            route,
            args.rate,
            1.0,
            args.conns,
            &mut seq,
        ))?;
    }
    let mut phases = Vec::new();
    for round in 0..args.rounds {
        let order = if round % 2 == 0 {
            ["memory", "plain", "tx"]
        } else {
            ["tx", "plain", "memory"]
        };
        for route in order {
            let cpu0 = procfs::sample(pid).map_or(0.0, |s| s.cpu_secs);
            let db0 = postgres_cpu();
            let started = Instant::now();
            let (ok, failed, latency) = rt.block_on(load(
                server.addr,
                route,
                args.rate,
                args.seconds,
                args.conns,
                &mut seq,
            ))?;
            let wall_secs = started.elapsed().as_secs_f64();
            let cpu_secs = procfs::sample(pid).map_or(0.0, |s| s.cpu_secs) - cpu0;
            let db_cpu_secs = postgres_cpu() - db0;
            phases.push(Phase {
                route,
                ok,
                failed,
                latency,
                cpu_secs,
                db_cpu_secs,
                wall_secs,
            });
        }
    }
    // The plain route's events reach the log shortly after their answers.
    std::thread::sleep(Duration::from_secs(2));
    drop(server);
    let mut clean = true;
    println!(
        "\n== {db:?}: {} req/s asked for, {} connections, {} s per phase, {} rounds; server pinned to CPU 0 (1 actix worker)",
        args.rate, args.conns, args.seconds, args.rounds,
    );
    println!(
        "| handler | answered | failed | req/s | p50 ms | p99 ms | max ms | server CPU µs / request | PostgreSQL CPU µs / request |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut summary = Vec::new();
    for route in ["memory", "plain", "tx"] {
        let mine: Vec<&Phase> = phases.iter().filter(|p| p.route == route).collect();
        let mut latency = Histogram::default();
        for p in &mine {
            latency.merge(&p.latency);
        }
        let ok: u64 = mine.iter().map(|p| p.ok).sum();
        let failed: u64 = mine.iter().map(|p| p.failed).sum();
        let cpu: f64 = mine.iter().map(|p| p.cpu_secs).sum();
        let wall: f64 = mine.iter().map(|p| p.wall_secs).sum();
        let cpu_per = cpu * 1e6 / ok.max(1) as f64;
        let db_cpu: f64 = mine.iter().map(|p| p.db_cpu_secs).sum();
        let db_per = db_cpu * 1e6 / ok.max(1) as f64;
        summary.push((
            route,
            latency.quantile(0.5),
            latency.quantile(0.99),
            cpu_per + db_per,
        ));
        println!(
            "| `{route}` | {ok} | {failed} | {:.0} | {:.2} | {:.2} | {:.2} | {cpu_per:.0} | {db_per:.0} |",
            ok as f64 / wall.max(1e-9),
            latency.quantile(0.5) as f64 / 1000.0,
            latency.quantile(0.99) as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
        );
        clean &= failed == 0;
    }
    let rows = database.count("bench_rows")?;
    let events = database.count("sse_events WHERE name IN ('plain', 'tx')")?;
    let in_memory = database.count("sse_events WHERE name = 'memory'")?;
    let logged_routes = rows.saturating_sub(phases_total(&phases, "memory") + warm_up(args));
    if events != logged_routes || in_memory != 0 {
        println!("MISMATCH: {logged_routes} rows written by plain and tx, {events} of their events in the log ({in_memory} from memory)");
        clean = false;
    } else {
        println!("{logged_routes} rows written by `plain` and `tx`, {events} events in the log: one event per change");
    }
    if let [memory, plain, tx] = summary[..] {
        for ((name, p50a, p99a, cpua), label) in
            [(plain, "plain (same log)"), (memory, "memory (no log)")]
        {
            let (_, p50b, p99b, cpub) = tx;
            println!(
                "transactional − {label}: p50 {:+.2} ms, p99 {:+.2} ms; CPU per request (server + PostgreSQL) {:.2}× ({name})",
                (p50b as f64 - p50a as f64) / 1000.0,
                (p99b as f64 - p99a as f64) / 1000.0,
                cpub / cpua.max(1e-9)
            );
        }
    }
    Ok(clean)
}

/// Requests answered by `route` over the measured phases.
fn phases_total(phases: &[Phase], route: &str) -> u64 {
    phases
        .iter()
        .filter(|p| p.route == route)
        .map(|p| p.ok)
        .sum()
}

/// Requests of the `memory` route's one-second warm-up.
fn warm_up(args: &TxArgs) -> u64 {
    (args.rate * 1.0).round().max(1.0) as u64
}

/// Posts to `/route` at `rate` for `seconds` over `conns` keep-alive connections; answered,
/// failed, and latency in µs from each request's due time.
async fn load(
    addr: SocketAddr,
    route: &'static str,
    rate: f64,
    seconds: f64,
    conns: usize,
    seq: &mut u64,
) -> Result<(u64, u64, Histogram), String> {
    let total = (rate * seconds).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(conns as f64 / rate.max(1.0));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let first = *seq;
    *seq += total;
    let mut tasks = Vec::new();
    for c in 0..conns as u64 {
        let mine: Vec<u64> = (0..total).filter(|i| i % conns as u64 == c).collect();
        let offset = interval.mul_f64(c as f64 / conns as f64);
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (mut ok, mut failed, mut latency) = (0, 0, Histogram::default());
            let mut buf = vec![0u8; 16 * 1024];
            for (k, i) in mine.into_iter().enumerate() {
                let due = start + offset + interval * u32::try_from(k).unwrap_or(u32::MAX);
                tokio::time::sleep_until(due).await;
                let body = format!(r#"{{"seq":{},"body":"{}"}}"#, first + i, "x".repeat(160));
                let request = format!(
                    "POST /{route} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let status = read_response(&mut stream, &mut buf).await?;
                latency.record(due.elapsed().as_micros() as u64);
                if status == 200 {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            Ok::<_, String>((ok, failed, latency))
        }));
    }
    let (mut ok, mut failed, mut latency) = (0, 0, Histogram::default());
    for t in tasks {
        let (o, f, l) = t.await.map_err(|e| e.to_string())??;
        ok += o;
        failed += f;
        latency.merge(&l);
    }
    Ok((ok, failed, latency))
}

/// Reads one response with a `Content-Length` body; its status.
pub(crate) async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
) -> Result<u16, String> {
    let mut filled = 0;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf[filled..]))
            .await
            .map_err(|_| "no response within 30 s".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) =
            response.parse(&buf[..filled]).map_err(|e| e.to_string())?
        {
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            let status = response.code.unwrap_or(0);
            if filled >= head + length {
                return Ok(status);
            }
        }
        if filled == buf.len() {
            return Err("response larger than the buffer".into());
        }
    }
}
