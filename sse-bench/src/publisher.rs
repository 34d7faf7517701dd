//! The publishers: keep-alive HTTP/1.1 connections that POST one event per request to the
//! server's publish route, at a fixed rate or as fast as the server answers.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Target;
use crate::http::{parse_head, Body, BodyKind};
use crate::server::Tick;
use crate::stats::{probe, Histogram};

/// How fast events are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Event `n` is sent `n / rate` seconds after the start (events per second, over all
    /// connections).
    Rate(f64),
    /// Each connection sends its next request as soon as the previous one is answered.
    Max,
}

/// When publishing stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// After this many events.
    Count(u64),
    /// After this long.
    For(Duration),
}

/// What to publish, where, how fast.
#[derive(Clone, Debug)]
pub struct PublishPlan {
    /// The publish route (`POST`).
    pub target: Target,
    /// Pace.
    pub pace: Pace,
    /// End.
    pub limit: Limit,
    /// Concurrent connections.
    pub connections: usize,
    /// Size of the JSON body.
    pub payload_bytes: usize,
    /// The body made of records ([`Tick::with_rows`]) rather than one repeated byte.
    pub rows: bool,
    /// A body to send instead of [`Tick`], for other servers: `{probe}` is replaced with the
    /// event's probe, `{seq}` with its sequence number, and `{seq%N}` with `(seq − 1) mod N`
    /// (events cycling over N users).
    pub body_template: Option<String>,
    /// The clock that probes' send times are measured against.
    pub base: Instant,
}

/// What the publishers did.
#[derive(Clone, Debug, Default)]
pub struct PublishReport {
    /// Requests sent.
    pub attempted: u64,
    /// Requests answered 2xx.
    pub accepted: u64,
    /// Requests that failed (status or I/O).
    pub failed: u64,
    /// Time from the first request to the last answer.
    pub elapsed: Duration,
    /// When the first request was sent, microseconds since `base`.
    pub first_sent_us: u64,
    /// Request round trips, microseconds.
    pub round_trip: Histogram,
    /// The first few errors.
    pub errors: Vec<String>,
}

/// The publisher thread's name, so its CPU time can be found in `/proc/self/task`.
pub const THREAD_NAME: &str = "bench-publish";

/// Starts publishing on a thread of its own.
pub fn start(plan: PublishPlan) -> io::Result<JoinHandle<PublishReport>> {
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(err) => {
                    return PublishReport {
                        errors: vec![format!("runtime: {err}")],
                        ..PublishReport::default()
                    }
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, publish_all(plan))
        })
}

struct Shared {
    plan: PublishPlan,
    start: Instant,
    end: Option<Instant>,
    next: Cell<u64>,
    report: RefCell<PublishReport>,
}

async fn publish_all(plan: PublishPlan) -> PublishReport {
    let start = Instant::now();
    let end = match plan.limit {
        Limit::For(d) => Some(start + d),
        Limit::Count(_) => None,
    };
    let shared = Rc::new(Shared {
        start,
        end,
        next: Cell::new(0),
        report: RefCell::new(PublishReport {
            first_sent_us: plan.base.elapsed().as_micros() as u64,
            ..PublishReport::default()
        }),
        plan,
    });
    let tasks: Vec<_> = (0..shared.plan.connections.max(1))
        .map(|_| tokio::task::spawn_local(publisher(shared.clone())))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let mut report = shared.report.take();
    report.elapsed = start.elapsed();
    report
}

/// Claims the next sequence number, or `None` when the run is over.
fn claim(shared: &Shared) -> Option<(u64, Option<Instant>)> {
    let seq = shared.next.get() + 1;
    if let Limit::Count(n) = shared.plan.limit {
        if seq > n {
            return None;
        }
    }
    let due = match shared.plan.pace {
        Pace::Rate(rate) => {
            Some(shared.start + Duration::from_secs_f64((seq - 1) as f64 / rate.max(1e-3)))
        }
        Pace::Max => None,
    };
    let now = Instant::now();
    if let Some(end) = shared.end {
        if due.unwrap_or(now) >= end || now >= end {
            return None;
        }
    }
    shared.next.set(seq);
    Some((seq, due))
}

async fn publisher(shared: Rc<Shared>) {
    let plan = &shared.plan;
    let mut conn: Option<Conn> = None;
    let mut consecutive_errors = 0;
    while let Some((seq, due)) = claim(&shared) {
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        let sent_us = plan.base.elapsed().as_micros() as u64;
        let body = match &plan.body_template {
            Some(t) => fill_template(t, seq, sent_us),
            None if plan.rows => {
                serde_json::to_string(&Tick::with_rows(seq, sent_us, plan.payload_bytes))
                    .unwrap_or_default()
            }
            None => serde_json::to_string(&Tick::new(seq, sent_us, plan.payload_bytes))
                .unwrap_or_default(),
        };
        shared.report.borrow_mut().attempted += 1;
        let result = match conn.as_mut() {
            Some(c) => c.post(&plan.target, &body).await,
            None => match Conn::open(&plan.target).await {
                Ok(c) => conn.insert(c).post(&plan.target, &body).await,
                Err(err) => Err(err),
            },
        };
        let mut report = shared.report.borrow_mut();
        match result {
            Ok(status) if (200..300).contains(&status) => {
                report.accepted += 1;
                report.round_trip.record(sent.elapsed().as_micros() as u64);
                consecutive_errors = 0;
            }
            other => {
                report.failed += 1;
                if report.errors.len() < 5 {
                    report.errors.push(match other {
                        Ok(status) => format!("publish answered {status}"),
                        Err(err) => format!("publish failed: {err}"),
                    });
                }
                conn = None;
                consecutive_errors += 1;
                if consecutive_errors >= 20 {
                    report
                        .errors
                        .push("a publisher gave up after 20 errors".into());
                    return;
                }
            }
        }
        if conn.as_ref().is_some_and(|c| c.closed) {
            conn = None;
        }
    }
}

/// The body of event `seq` from a template (see [`PublishPlan::body_template`]).
pub fn fill_template(template: &str, seq: u64, sent_us: u64) -> String {
    let mut out = template
        .replace("{probe}", &probe(seq, sent_us))
        .replace("{seq}", &seq.to_string());
    while let Some(start) = out.find("{seq%") {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        let modulus: u64 = out[start + 5..start + len].parse().unwrap_or(0).max(1);
        out.replace_range(
            start..=start + len,
            &((seq.saturating_sub(1)) % modulus).to_string(),
        );
    }
    out
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

impl Conn {
    async fn open(target: &Target) -> io::Result<Conn> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target.addr))
            .await
            .map_err(|_| io::Error::other("connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; 64 * 1024],
            closed: false,
        })
    }

    /// Sends one request and reads its whole response; returns the status.
    async fn post(&mut self, target: &Target, body: &str) -> io::Result<u16> {
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            target.path,
            target.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        self.stream.write_all(&request).await?;

        let mut head_buf = Vec::new();
        let (head, head_len) = loop {
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Err(io::Error::other("connection closed before the response"));
            }
            head_buf.extend_from_slice(&self.buf[..n]);
            if let Some(parsed) = parse_head(&head_buf).map_err(io::Error::other)? {
                break parsed;
            }
        };
        let mut decoder = Body::new(head.body);
        decoder
            .feed(&head_buf[head_len..], |_| {})
            .map_err(io::Error::other)?;
        while !decoder.is_done() {
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                if head.body != BodyKind::UntilClose {
                    return Err(io::Error::other("connection closed inside the response"));
                }
                self.closed = true;
                break;
            }
            decoder
                .feed(&self.buf[..n], |_| {})
                .map_err(io::Error::other)?;
        }
        Ok(head.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_probe_seq_and_cycles() {
        let t = r#"{"uid":{seq%3},"n":{seq},"probe":"{probe}"}"#;
        assert_eq!(
            fill_template(t, 1, 7),
            r#"{"uid":0,"n":1,"probe":"bench:1:7"}"#
        );
        assert_eq!(
            fill_template(t, 5, 9),
            r#"{"uid":1,"n":5,"probe":"bench:5:9"}"#
        );
        assert_eq!(fill_template("{seq%x}", 4, 0), "0");
        assert_eq!(fill_template("{seq%", 4, 0), "{seq%");
    }
}
