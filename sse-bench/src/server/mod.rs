//! The servers under test, each run as its own process (`sse-bench serve --impl ...`), so
//! `/proc/<pid>/stat` counts the server's work and nothing of the load tool's.

mod bare;
mod naive;
mod ours;

use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use actix_web::web;
use serde::{Deserialize, Serialize};

/// Which server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Impl {
    /// sse-core, with an `#[emit_event]` handler.
    Ours,
    /// The same, with a Prometheus recorder installed (feature `metrics`), for its overhead.
    OursMetrics,
    /// sse-core with `compress(true)`, its clients asking for gzip (`--compress`).
    OursGzip,
    /// `tokio::sync::broadcast<String>` and an `actix_web_lab::sse::Event` per subscriber.
    Naive,
    /// A bare actix streaming response that only sends keep-alives (the memory floor).
    Bare,
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Impl::Ours => "ours",
            Impl::OursMetrics => "ours-metrics",
            Impl::OursGzip => "ours-gzip",
            Impl::Naive => "naive",
            Impl::Bare => "bare",
        })
    }
}

/// The payload every benchmark event carries: the probe (`bench:<seq>:<sent_us>`) and padding
/// up to the requested size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tick {
    /// `bench:<seq>:<sent_us>`.
    pub probe: String,
    /// Records such as an API returns (`--compress`): what compression is measured on, since
    /// a filler of one repeated byte would compress to almost nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<Row>,
    /// Filler.
    pub pad: String,
}

/// One record of a [`Tick`] with rows: keys repeat, values vary, as in real JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    id: u64,
    username: String,
    email: String,
    score: f64,
    active: bool,
    updated_at: String,
}

impl Row {
    /// Row `n` of event `seq`: different values for every row and event, deterministically.
    fn new(seq: u64, n: u64) -> Row {
        const NAMES: [&str; 12] = [
            "ada", "grace", "alan", "edsger", "barbara", "donald", "ken", "dennis", "margaret",
            "john", "frances", "tony",
        ];
        // A cheap mix (splitmix64's), so that values do not repeat in a pattern.
        let mut x = (seq << 16 | n).wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let name = NAMES[(x % 12) as usize];
        let id = 10_000 + x % 90_000;
        Row {
            id,
            username: format!("{name}.{}", x % 1000),
            email: format!("{name}{id}@example.com"),
            score: (x % 100_000) as f64 / 1000.0,
            active: x & 1 == 1,
            updated_at: format!(
                "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                1 + x % 12,
                1 + (x >> 8) % 28,
                (x >> 16) % 24,
                (x >> 24) % 60,
                (x >> 32) % 60
            ),
        }
    }
}

impl Tick {
    /// The event `seq`, sent at `sent_us`, padded so that its JSON is about `bytes` long.
    pub fn new(seq: u64, sent_us: u64, bytes: usize) -> Self {
        let probe = crate::stats::probe(seq, sent_us);
        // `{"probe":"","pad":""}` is 21 bytes.
        let pad = bytes.saturating_sub(21 + probe.len());
        Tick {
            probe,
            rows: Vec::new(),
            pad: "x".repeat(pad),
        }
    }

    /// Like [`Tick::new`], the size made of [`Row`]s as far as they fit, then padding.
    pub fn with_rows(seq: u64, sent_us: u64, bytes: usize) -> Self {
        let mut tick = Tick::new(seq, sent_us, 0);
        // `{"probe":"…","rows":[],"pad":""}` around the rows, then one comma between each.
        let mut len = 30 + tick.probe.len();
        for n in 0.. {
            let row = Row::new(seq, n);
            let row_len = serde_json::to_string(&row).map_or(usize::MAX, |s| s.len() + 1);
            if len + row_len > bytes {
                break;
            }
            len += row_len;
            tick.rows.push(row);
        }
        let json_len = serde_json::to_string(&tick).map_or(bytes, |s| s.len());
        tick.pad = "x".repeat(bytes.saturating_sub(json_len));
        tick
    }
}

/// The payload of the `targeted` preset's events: one user's update, whose topic is
/// `users/{uid}`, so each event has an audience of one subscriber.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserUpdate {
    /// Which user (and which subscriber's topic).
    pub uid: u64,
    /// `bench:<seq>:<sent_us>`.
    pub probe: String,
}

/// Settings of the `serve` subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Which server.
    #[arg(long = "impl", value_enum, default_value_t = Impl::Ours)]
    pub imp: Impl,
    /// Port on 127.0.0.1; 0 picks a free one (printed on stdout).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// actix worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// sse-core history, in events.
    #[arg(long, default_value_t = 65_536)]
    pub history: usize,
    /// sse-core history, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    pub history_bytes: usize,
    /// Keep-alive period, seconds (ours; the others use 5 s as written).
    #[arg(long, default_value_t = 5)]
    pub keep_alive_secs: u64,
    /// Exits after this long whatever happens.
    #[arg(long, default_value_t = 3600)]
    pub max_seconds: u64,
    /// Exits when stdin closes: set by the load tool, which holds the pipe.
    #[arg(long)]
    pub exit_on_stdin_eof: bool,
    /// Ours: share the events through this Redis (`redis://127.0.0.1:6379`).
    #[arg(long)]
    pub redis: Option<String>,
    /// Ours, with `--redis`: the stream key.
    #[arg(long, default_value = "sse-bench:events")]
    pub redis_stream: String,
    /// Ours: share the events through this NATS JetStream (`nats://127.0.0.1:4222`).
    #[arg(long, conflicts_with = "redis")]
    pub nats: Option<String>,
    /// Ours, with `--nats`: the stream name.
    #[arg(long, default_value = "sse-bench-events")]
    pub nats_stream: String,
    /// Ours: the SQL event log on this PostgreSQL database (`postgres://...`), followed with
    /// `LISTEN`/`NOTIFY`; with `--redis` or `--nats` as well, relayed into that stream.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Ours, with `--postgres`: the schema (search path) of the log's table.
    #[arg(long)]
    pub postgres_schema: Option<String>,
}

impl ServeArgs {
    /// Default settings for `imp`.
    pub fn new(imp: Impl) -> Self {
        ServeArgs {
            imp,
            port: 0,
            workers: 1,
            history: 65_536,
            history_bytes: 16 << 20,
            keep_alive_secs: 5,
            max_seconds: 3600,
            exit_on_stdin_eof: false,
            redis: None,
            redis_stream: "sse-bench:events".into(),
            nats: None,
            nats_stream: "sse-bench-events".into(),
            postgres: None,
            postgres_schema: None,
        }
    }

    /// The keep-alive period of started servers.
    pub(crate) fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs)
    }

    fn to_cli(&self) -> Vec<String> {
        let mut cli = vec![
            "--impl".into(),
            self.imp.to_string(),
            "--port".into(),
            self.port.to_string(),
            "--workers".into(),
            self.workers.to_string(),
            "--history".into(),
            self.history.to_string(),
            "--history-bytes".into(),
            self.history_bytes.to_string(),
            "--keep-alive-secs".into(),
            self.keep_alive_secs.to_string(),
            "--max-seconds".into(),
            self.max_seconds.to_string(),
        ];
        if let Some(url) = &self.redis {
            cli.extend([
                "--redis".into(),
                url.clone(),
                "--redis-stream".into(),
                self.redis_stream.clone(),
            ]);
        }
        if let Some(url) = &self.nats {
            cli.extend([
                "--nats".into(),
                url.clone(),
                "--nats-stream".into(),
                self.nats_stream.clone(),
            ]);
        }
        if let Some(url) = &self.postgres {
            cli.extend(["--postgres".into(), url.clone()]);
        }
        if let Some(schema) = &self.postgres_schema {
            cli.extend(["--postgres-schema".into(), schema.clone()]);
        }
        cli
    }
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(4 << 20)
}

/// Applies the settings every server shares (one place, so the comparison is fair), binds and
/// starts it.
macro_rules! bind {
    ($server:expr, $args:expr) => {{
        let server = $server
            .workers($args.workers)
            .backlog(4096)
            // actix's default (25k per worker) would cap the idle preset.
            .max_connections(1 << 20)
            .shutdown_timeout(1)
            .bind(("127.0.0.1", $args.port))?;
        let addr = server.addrs()[0];
        Ok((server.run(), addr))
    }};
}
pub(crate) use bind;

/// Runs a server until it is killed (or its stdin closes, or `max_seconds` pass).
pub fn serve(args: ServeArgs) -> io::Result<()> {
    crate::procfs::raise_nofile_limit();
    if args.exit_on_stdin_eof {
        std::thread::spawn(|| {
            let _ = io::copy(&mut io::stdin(), &mut io::sink());
            std::process::exit(0);
        });
    }
    let max = Duration::from_secs(args.max_seconds);
    std::thread::spawn(move || {
        std::thread::sleep(max);
        std::process::exit(0);
    });
    actix_web::rt::System::new().block_on(async move {
        if args.postgres.is_some() && args.imp != Impl::Ours {
            return Err(io::Error::other("--postgres is for --impl ours"));
        }
        let (server, addr) = match args.imp {
            Impl::Ours if args.postgres.is_some() => ours::server_on_postgres(&args).await?,
            Impl::Ours => ours::server(&args, false)?,
            Impl::OursMetrics => ours::server(&args, true)?,
            Impl::OursGzip => ours::server_compressed(&args)?,
            Impl::Naive => naive::server(&args)?,
            Impl::Bare => bare::server(&args)?,
        };
        println!("listening on {addr}");
        server.await
    })
}

/// Starts `cmd`, a server that prints `listening on <addr>` first, with stdin piped (it exits
/// when the pipe closes) and stdout read for that line; its child and address.
pub(crate) fn spawn_listening(cmd: &mut Command) -> Result<(Child, SocketAddr), String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the server did not start: {line:?}"))?;
    Ok((child, addr))
}

/// A server process started by the load tool; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Its address.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `exe serve ...`, pinned to `cpus` with `taskset` if given, and waits until it
    /// listens.
    pub fn spawn(exe: &Path, args: &ServeArgs, cpus: Option<&str>) -> io::Result<Self> {
        let mut cmd = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.arg("serve")
            .args(args.to_cli())
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining, so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut process = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            io::Error::other(format!("{} server did not start listening", args.imp))
        })?;
        process.addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected server output {line:?}")))?;
        Ok(process)
    }

    /// The server's process id (taskset execs the server, so it is the same process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_json_has_the_requested_size() {
        for bytes in [200, 4096, 65536] {
            let json = serde_json::to_string(&Tick::new(123, 456_789, bytes)).unwrap();
            assert_eq!(json.len(), bytes);
        }
        for bytes in [200, 4096] {
            let json = serde_json::to_string(&Tick::with_rows(123, 456_789, bytes)).unwrap();
            assert_eq!(json.len(), bytes, "{json}");
        }
        // Too small to pad: just the probe.
        assert!(serde_json::to_string(&Tick::new(1, 1, 0)).unwrap().len() < 40);
    }
}
