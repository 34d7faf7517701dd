//! The subscribers: real SSE connections over loopback, spread over client threads, each
//! decoding chunked HTTP and parsing SSE incrementally, and accounting for every event.

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memchr::memmem::Finder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::http::{parse_head, Body};
use crate::sse::{Item, Parser};
use crate::stats::{find_probe, Histogram, SeqTally, PROBE_PREFIX};

/// Connections being opened at once per client thread: enough to open 20k connections in
/// seconds, few enough not to overflow the server's accept backlog.
const CONNECT_CONCURRENCY: usize = 64;

/// In a [`Target`]'s path, replaced with the connection's index (`/events?topic=users/{conn}`
/// gives every subscriber a topic of its own).
pub const CONN_INDEX: &str = "{conn}";

/// Where the stream is served.
#[derive(Clone, Debug)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// `Host` header.
    pub host: String,
    /// Path of the SSE endpoint.
    pub path: String,
}

/// What the pool opens.
#[derive(Clone, Debug)]
pub struct PoolPlan {
    /// The SSE endpoint.
    pub target: Target,
    /// Connections that read as fast as they can.
    pub readers: usize,
    /// Connections that read the response head and then never read again.
    pub stalled: usize,
    /// Client threads (each a single-threaded runtime).
    pub threads: usize,
    /// Connections per loopback source address before moving to the next (127.0.0.2, ...):
    /// one address has only ~28k ephemeral ports.
    pub conns_per_addr: usize,
    /// The first source address (127.0.0.1, or another loopback address for a load process
    /// of its own).
    pub source: Ipv4Addr,
    /// The clock that probes' send times are measured against.
    pub base: Instant,
    /// Read buffer per reading connection.
    pub read_buf: usize,
    /// Ask for gzip (`Accept-Encoding: gzip`) and decode the stream as it arrives.
    pub gzip: bool,
}

/// Counters the load tool watches while the pool runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Connections that got a 200 response head.
    pub connected: AtomicUsize,
    /// Connections that could not be opened.
    pub failed: AtomicUsize,
    /// Connections the server closed.
    pub ended: AtomicUsize,
    /// First deliveries of a probe, over all connections.
    pub delivered: AtomicU64,
}

/// One connection's account.
#[derive(Clone, Debug, Default)]
pub struct ConnSummary {
    /// Opened as a stalled client.
    pub stalled: bool,
    /// Got a 200 response head.
    pub connected: bool,
    /// The server ended the stream before the run did.
    pub ended_early: bool,
    /// Distinct probes received.
    pub unique: u64,
    /// Probes received again.
    pub duplicates: u64,
    /// Events without a probe of this run.
    pub foreign: u64,
    /// `sse-reset` events.
    pub resets: u64,
    /// Comments (keep-alives).
    pub comments: u64,
    /// Bytes of the response body as read from the socket (chunked framing included; gzip
    /// when asked for).
    pub wire_bytes: u64,
    /// Why the connection failed or ended, if it did.
    pub error: Option<String>,
}

/// A connection's account while it runs.
#[derive(Debug, Default)]
struct ConnState {
    summary: ConnSummary,
    tally: SeqTally,
}

impl ConnState {
    fn finish(&self) -> ConnSummary {
        ConnSummary {
            unique: self.tally.unique(),
            duplicates: self.tally.duplicates(),
            foreign: self.summary.foreign + self.tally.out_of_range(),
            ..self.summary.clone()
        }
    }
}

/// What the pool measured.
#[derive(Debug, Default)]
pub struct PoolReport {
    /// Delivery latency (send to parse) of first deliveries, microseconds.
    pub latency: Histogram,
    /// The same, per second of send time since `base`.
    pub windows: Vec<Histogram>,
    /// Every connection's account.
    pub conns: Vec<ConnSummary>,
}

impl PoolReport {
    fn merge(&mut self, other: PoolReport) {
        self.latency.merge(&other.latency);
        if other.windows.len() > self.windows.len() {
            self.windows
                .resize(other.windows.len(), Histogram::default());
        }
        for (mine, theirs) in self.windows.iter_mut().zip(&other.windows) {
            mine.merge(theirs);
        }
        self.conns.extend(other.conns);
    }

    fn record(&mut self, sent_us: u64, latency_us: u64) {
        self.latency.record(latency_us);
        let w = (sent_us / 1_000_000) as usize;
        if w >= self.windows.len() {
            self.windows.resize(w + 1, Histogram::default());
        }
        self.windows[w].record(latency_us);
    }
}

/// Running client threads.
#[derive(Debug)]
pub struct Pool {
    threads: Vec<JoinHandle<PoolReport>>,
    stop: watch::Sender<bool>,
    total: usize,
    /// Live counters.
    pub progress: Arc<Progress>,
}

/// Thread names start with this, so their CPU time can be found in `/proc/self/task`.
pub const THREAD_PREFIX: &str = "bench-client";

impl Pool {
    /// Starts the client threads, which open every connection at once (a bounded number in
    /// flight per thread).
    pub fn start(plan: PoolPlan) -> io::Result<Pool> {
        let plan = Arc::new(plan);
        let progress = Arc::new(Progress::default());
        let (stop, stop_rx) = watch::channel(false);
        let total = plan.readers + plan.stalled;
        let threads = plan.threads.max(1);
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let ids: Vec<usize> = (t..total).step_by(threads).collect();
            let (plan, progress, stop_rx) = (plan.clone(), progress.clone(), stop_rx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("{THREAD_PREFIX}-{t}"))
                    .spawn(move || client_thread(&plan, &ids, &progress, stop_rx))?,
            );
        }
        Ok(Pool {
            threads: handles,
            stop,
            total,
            progress,
        })
    }

    /// Waits until every connection is open or has failed, or `timeout` passes; returns the
    /// number open.
    pub fn wait_connected(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let connected = self.progress.connected.load(Ordering::Relaxed);
            let failed = self.progress.failed.load(Ordering::Relaxed);
            if connected + failed >= self.total || Instant::now() >= deadline {
                return connected;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// First deliveries so far, over all connections.
    pub fn delivered(&self) -> u64 {
        self.progress.delivered.load(Ordering::Relaxed)
    }

    /// Closes every connection and returns what was measured.
    pub fn stop(self) -> PoolReport {
        let _ = self.stop.send(true);
        let mut report = PoolReport::default();
        for handle in self.threads {
            match handle.join() {
                Ok(r) => report.merge(r),
                Err(_) => eprintln!("warning: a client thread panicked"),
            }
        }
        report
    }
}

/// The state a reading connection shares with its thread.
struct Thread {
    plan: Arc<PoolPlan>,
    progress: Arc<Progress>,
    finder: Finder<'static>,
    connect_slots: Semaphore,
    report: RefCell<PoolReport>,
}

fn client_thread(
    plan: &Arc<PoolPlan>,
    ids: &[usize],
    progress: &Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> PoolReport {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("warning: client thread could not start a runtime: {err}");
            progress.failed.fetch_add(ids.len(), Ordering::Relaxed);
            return PoolReport::default();
        }
    };
    let thread = Rc::new(Thread {
        plan: plan.clone(),
        progress: progress.clone(),
        finder: Finder::new(PROBE_PREFIX),
        connect_slots: Semaphore::new(CONNECT_CONCURRENCY),
        report: RefCell::new(PoolReport::default()),
    });
    let conns: Vec<Rc<RefCell<ConnState>>> = ids
        .iter()
        .map(|&i| {
            let mut state = ConnState::default();
            state.summary.stalled = i >= plan.readers;
            Rc::new(RefCell::new(state))
        })
        .collect();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        for (&index, conn) in ids.iter().zip(&conns) {
            tokio::task::spawn_local(connection(thread.clone(), index, conn.clone()));
        }
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    });
    drop(local);
    let mut report = thread.report.take();
    report.conns = conns.iter().map(|c| c.borrow().finish()).collect();
    report
}

async fn connection(thread: Rc<Thread>, index: usize, conn: Rc<RefCell<ConnState>>) {
    let result = run(&thread, index, &conn).await;
    let c = &mut conn.borrow_mut().summary;
    if !c.connected {
        thread.progress.failed.fetch_add(1, Ordering::Relaxed);
    } else {
        c.ended_early = true;
        thread.progress.ended.fetch_add(1, Ordering::Relaxed);
    }
    c.error = Some(match result {
        Ok(()) => "the server closed the stream".into(),
        Err(err) => err.to_string(),
    });
}

/// The source address of connection `index`: `first` for the first `per_addr`, then the
/// next address (127.0.0.1, 127.0.0.2, ...), and so on.
pub fn source_addr(first: Ipv4Addr, index: usize, per_addr: usize) -> Ipv4Addr {
    let k = (index / per_addr.max(1)) as u32;
    Ipv4Addr::from(u32::from(first) + k)
}

async fn connect(target: &SocketAddr, source: Ipv4Addr, stalled: bool) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        let socket = TcpSocket::new_v4()?;
        if source != Ipv4Addr::LOCALHOST {
            socket.bind(SocketAddr::from((source, 0)))?;
        }
        socket
    } else {
        TcpSocket::new_v6()?
    };
    if stalled {
        // A stalled client's window fills quickly, as a phone's that went to sleep would.
        socket.set_recv_buffer_size(4096)?;
    }
    socket.connect(*target).await
}

async fn run(thread: &Thread, index: usize, conn: &RefCell<ConnState>) -> io::Result<()> {
    let plan = &thread.plan;
    let stalled = conn.borrow().summary.stalled;
    let slot = thread
        .connect_slots
        .acquire()
        .await
        .map_err(io::Error::other)?;
    let source = source_addr(plan.source, index, plan.conns_per_addr);
    let mut stream = None;
    let mut last_err = None;
    for attempt in 0..3u64 {
        match tokio::time::timeout(
            Duration::from_secs(10),
            connect(&plan.target.addr, source, stalled),
        )
        .await
        {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(err)) => last_err = Some(err),
            Err(_) => last_err = Some(io::Error::other("connect timed out")),
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
    }
    let Some(mut stream) = stream else {
        return Err(last_err.unwrap_or_else(|| io::Error::other("connect failed")));
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{}\r\n",
        plan.target.path.replace(CONN_INDEX, &index.to_string()),
        plan.target.host,
        if plan.gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        }
    );
    stream.write_all(request.as_bytes()).await?;

    let mut buf = vec![
        0u8;
        if stalled {
            1024
        } else {
            plan.read_buf.max(1024)
        }
    ];
    let mut head_buf = Vec::new();
    let (head, head_len) = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::other(
                "connection closed before the response head",
            ));
        }
        head_buf.extend_from_slice(&buf[..n]);
        if let Some(parsed) = parse_head(&head_buf).map_err(io::Error::other)? {
            break parsed;
        }
        if head_buf.len() > 64 * 1024 {
            return Err(io::Error::other("response head too large"));
        }
    };
    if head.status != 200 {
        return Err(io::Error::other(format!("status {}", head.status)));
    }
    drop(slot);
    conn.borrow_mut().summary.connected = true;
    thread.progress.connected.fetch_add(1, Ordering::Relaxed);
    if stalled {
        // Hold the connection without reading until the run ends.
        std::future::pending::<()>().await;
    }

    let mut body = Body::new(head.body);
    let mut parser = Parser::new();
    // Decodes as a browser does, each chunk as it comes (the decoder's output is taken after
    // every write).
    let mut gunzip = plan.gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
    let mut feed = |bytes: &[u8]| -> io::Result<()> {
        let now_us = plan.base.elapsed().as_micros() as u64;
        let mut c = conn.borrow_mut();
        c.summary.wire_bytes += bytes.len() as u64;
        let mut report = thread.report.borrow_mut();
        let mut new = 0;
        let mut gzip_error = None;
        body.feed(bytes, |chunk| {
            let decoded;
            let chunk = match &mut gunzip {
                Some(gunzip) => {
                    use std::io::Write;
                    if let Err(err) = gunzip.write_all(chunk).and_then(|()| gunzip.flush()) {
                        gzip_error = Some(err);
                        return;
                    }
                    decoded = std::mem::take(gunzip.get_mut());
                    &decoded[..]
                }
                None => chunk,
            };
            parser.feed(chunk, |item| match item {
                Item::Comment(_) => c.summary.comments += 1,
                Item::Event { event, .. } if event == sse_core::RESET_EVENT.as_bytes() => {
                    c.summary.resets += 1;
                }
                Item::Event { data, .. } => match find_probe(&thread.finder, data) {
                    Some((seq, sent_us)) => {
                        if c.tally.record(seq) {
                            new += 1;
                            report.record(sent_us, now_us.saturating_sub(sent_us));
                        }
                    }
                    None => c.summary.foreign += 1,
                },
            });
        })
        .map_err(io::Error::other)?;
        if let Some(err) = gzip_error {
            return Err(io::Error::other(format!("gzip: {err}")));
        }
        thread.progress.delivered.fetch_add(new, Ordering::Relaxed);
        Ok(())
    };
    feed(&head_buf[head_len..])?;
    drop(head_buf);
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        feed(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_move_on_every_per_addr_connections() {
        let first = Ipv4Addr::LOCALHOST;
        assert_eq!(source_addr(first, 0, 25_000), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(
            source_addr(first, 24_999, 25_000),
            Ipv4Addr::new(127, 0, 0, 1)
        );
        assert_eq!(
            source_addr(first, 25_000, 25_000),
            Ipv4Addr::new(127, 0, 0, 2)
        );
        assert_eq!(source_addr(first, 300, 1), Ipv4Addr::new(127, 0, 1, 45));
        let own = Ipv4Addr::new(127, 0, 0, 3);
        assert_eq!(source_addr(own, 10, 25_000), own);
    }
}
