//! One load process of `scale` (`sse-bench scale-load`, started by the tool): its own share of
//! the subscribers, under its own open-file limit, from its own loopback source address.
//!
//! It talks to the tool over its pipes, a JSON [`Line`] per line on stdout: a [`Status`]
//! every 100 ms, and a [`Summary`] once stdin says `stop <events published>`. It exits when
//! stdin closes, so it never outlives the tool.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::client::{Pool, PoolPlan, PoolReport, Target};
use crate::procfs;
use crate::stats::Histogram;

/// Options of the hidden `scale-load` command.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// The instance's address.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Subscribers to open.
    #[arg(long)]
    pub subs: usize,
    /// Loopback source address of every connection.
    #[arg(long)]
    pub source: Ipv4Addr,
    /// Wall-clock microseconds since the Unix epoch that the probes' send times count from.
    #[arg(long)]
    pub epoch_us: u64,
    /// Read buffer per connection.
    #[arg(long, default_value_t = 4096)]
    pub read_buf: usize,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// What a load process has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Connections that got a 200 response head.
    pub connected: usize,
    /// Connections that could not be opened.
    pub failed: usize,
    /// Connections the server closed.
    pub ended: usize,
    /// First deliveries of a probe, over all connections.
    pub delivered: u64,
}

/// A load process's account at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Readers that connected.
    pub readers: u64,
    /// Connections that could not be opened.
    pub connect_failures: u64,
    /// Streams the server ended during the run.
    pub ended_early: u64,
    /// Distinct events received, over all readers.
    pub delivered: u64,
    /// Events received again.
    pub duplicates: u64,
    /// `sse-reset` events received.
    pub resets: u64,
    /// Events without a probe of this run.
    pub foreign: u64,
    /// Readers that missed at least one of the events published.
    pub readers_with_loss: u64,
    /// Delivery latency (send to parse), microseconds.
    pub latency: Histogram,
    /// Why the first failed connection failed.
    pub first_error: Option<String>,
}

impl Summary {
    /// The account of `pool` when `published` events were accepted.
    fn of(pool: PoolReport, published: u64) -> Summary {
        let mut s = Summary {
            latency: pool.latency,
            first_error: pool.conns.iter().find_map(|c| c.error.clone()),
            ..Summary::default()
        };
        for c in &pool.conns {
            if !c.connected {
                s.connect_failures += 1;
                continue;
            }
            s.readers += 1;
            s.ended_early += u64::from(c.ended_early);
            s.delivered += c.unique;
            s.duplicates += c.duplicates;
            s.resets += c.resets;
            s.foreign += c.foreign;
            s.readers_with_loss += u64::from(c.unique < published);
        }
        if s.connect_failures == 0 && s.ended_early == 0 {
            s.first_error = None;
        }
        s
    }

    /// Adds `other`'s account to this one.
    pub fn merge(&mut self, other: &Summary) {
        self.readers += other.readers;
        self.connect_failures += other.connect_failures;
        self.ended_early += other.ended_early;
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.resets += other.resets;
        self.foreign += other.foreign;
        self.readers_with_loss += other.readers_with_loss;
        self.latency.merge(&other.latency);
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// One line of a load process's output.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Line {
    /// Progress.
    Status(Status),
    /// The end.
    Summary(Summary),
}

/// Microseconds since the Unix epoch, now.
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The `Instant` at wall-clock time `epoch_us`, so that latencies measured in this process
/// and send times taken in another one count from the same moment (to the clocks' reading
/// error, microseconds).
fn base_at(epoch_us: u64) -> Instant {
    let now = Instant::now();
    let ago = Duration::from_micros(wall_us().saturating_sub(epoch_us));
    now.checked_sub(ago).unwrap_or(now)
}

/// Runs a load process (the `scale-load` command).
pub fn main(args: &LoadArgs) -> Result<(), String> {
    procfs::raise_nofile_limit();
    let pool = Pool::start(PoolPlan {
        target: Target {
            addr: args.addr,
            host: args.addr.to_string(),
            path: "/events".into(),
        },
        readers: args.subs,
        stalled: 0,
        threads: args.threads.max(1),
        conns_per_addr: args.subs.max(1),
        source: args.source,
        base: base_at(args.epoch_us),
        read_buf: args.read_buf.max(1024),
        gzip: false,
    })
    .map_err(|e| format!("cannot start the client threads: {e}"))?;

    let (tx, commands) = mpsc::channel();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("stop ") {
                let _ = tx.send(n.trim().parse::<u64>().unwrap_or(0));
                return;
            }
        }
        // Stdin closed: the tool is gone; so is this process.
        std::process::exit(0);
    });
    let published = loop {
        match commands.recv_timeout(Duration::from_millis(100)) {
            Ok(published) => break published,
            Err(RecvTimeoutError::Timeout) => print_line(&Line::Status(status(&pool)))?,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    };
    print_line(&Line::Status(status(&pool)))?;
    print_line(&Line::Summary(Summary::of(pool.stop(), published)))
}

fn status(pool: &Pool) -> Status {
    let p = &pool.progress;
    Status {
        connected: p.connected.load(Ordering::Relaxed),
        failed: p.failed.load(Ordering::Relaxed),
        ended: p.ended.load(Ordering::Relaxed),
        delivered: p.delivered.load(Ordering::Relaxed),
    }
}

fn print_line(line: &Line) -> Result<(), String> {
    let json = serde_json::to_string(line).map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    writeln!(out, "{json}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}

/// A load process started by the tool; killed when dropped.
pub struct LoadProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    status: Arc<Mutex<Status>>,
    summary: Receiver<Summary>,
    /// Which instance its subscribers are on.
    pub instance: usize,
}

impl LoadProcess {
    /// Starts `exe scale-load` with `args`, its subscribers counted for `instance`.
    pub fn spawn(exe: &std::path::Path, args: &LoadArgs, instance: usize) -> io::Result<Self> {
        let mut child = Command::new(exe)
            .arg("scale-load")
            .args(["--addr", &args.addr.to_string()])
            .args(["--subs", &args.subs.to_string()])
            .args(["--source", &args.source.to_string()])
            .args(["--epoch-us", &args.epoch_us.to_string()])
            .args(["--read-buf", &args.read_buf.to_string()])
            .args(["--threads", &args.threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let status = Arc::new(Mutex::new(Status::default()));
        let (tx, summary) = mpsc::channel();
        let shared = status.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line::Status(s)) => {
                        *shared.lock().unwrap_or_else(PoisonError::into_inner) = s;
                    }
                    Ok(Line::Summary(s)) => {
                        let _ = tx.send(s);
                    }
                    Err(err) => eprintln!("scale-load said {line:?}: {err}"),
                }
            }
        });
        Ok(LoadProcess {
            stdin: child.stdin.take(),
            child,
            status,
            summary,
            instance,
        })
    }

    /// Its latest status.
    pub fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks it to close its connections and waits (at most `timeout`) for its account.
    pub fn stop(&mut self, published: u64, timeout: Duration) -> io::Result<Summary> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("already stopped"))?;
        writeln!(stdin, "stop {published}")?;
        stdin.flush()?;
        let summary = self.summary.recv_timeout(timeout).map_err(|_| {
            io::Error::other(format!(
                "load process {} sent no summary within {timeout:?}",
                self.pid()
            ))
        })?;
        self.stdin = None;
        Ok(summary)
    }
}

impl Drop for LoadProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ConnSummary;

    #[test]
    fn a_summary_counts_readers_that_missed_events() {
        let conn = |unique, duplicates| ConnSummary {
            connected: true,
            unique,
            duplicates,
            ..ConnSummary::default()
        };
        let pool = PoolReport {
            conns: vec![
                conn(10, 0),
                conn(9, 1),
                ConnSummary {
                    error: Some("refused".into()),
                    ..ConnSummary::default()
                },
            ],
            ..PoolReport::default()
        };
        let s = Summary::of(pool, 10);
        assert_eq!((s.readers, s.connect_failures), (2, 1));
        assert_eq!((s.delivered, s.duplicates, s.readers_with_loss), (19, 1, 1));
        assert_eq!(s.first_error.as_deref(), Some("refused"));

        let mut total = Summary::default();
        total.merge(&s);
        total.merge(&s);
        assert_eq!((total.readers, total.delivered), (4, 38));
    }

    #[test]
    fn lines_round_trip_through_json() {
        let line = Line::Status(Status {
            connected: 3,
            failed: 0,
            ended: 0,
            delivered: 7,
        });
        let json = serde_json::to_string(&line).expect("json");
        assert!(json.starts_with(r#"{"status":"#), "{json}");
        match serde_json::from_str::<Line>(&json).expect("parse") {
            Line::Status(s) => assert_eq!(s.delivered, 7),
            Line::Summary(_) => panic!("a status was sent"),
        }
    }

    #[test]
    fn a_base_in_the_past_is_that_far_back() {
        let base = base_at(wall_us() - 2_000_000);
        let back = base.elapsed().as_secs_f64();
        assert!((1.9..3.0).contains(&back), "{back}");
    }
}
