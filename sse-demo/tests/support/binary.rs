//! Runs the real `sse-demo` binary on a loopback port, every wait bounded.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running `sse-demo` process; killed when dropped.
pub struct Demo {
    child: Child,
    /// Base URL with a trailing slash, as the binary printed it.
    pub url: String,
    pub addr: SocketAddr,
    /// The operator's listener, when started with `--ops-bind`.
    pub ops: Option<SocketAddr>,
}

impl Demo {
    /// Starts the binary on `port` (0: any free one) with the database `db` (a file path or a
    /// database URL), and waits for it to print its address.
    pub fn start(db: impl AsRef<OsStr>, port: u16) -> Demo {
        Self::start_with(db, port, &[])
    }

    /// [`Demo::start`] with more command-line arguments.
    pub fn start_with(db: impl AsRef<OsStr>, port: u16, args: &[&str]) -> Demo {
        Self::spawn(db, port, args).ready()
    }

    /// Starts the binary without waiting for it: several can be started at the same moment,
    /// as a deployment starts them, then each awaited with [`Starting::ready`].
    pub fn spawn(db: impl AsRef<OsStr>, port: u16, args: &[&str]) -> Starting {
        let mut child = Command::new(binary())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .arg("--database-url")
            .arg(db)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sse-demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[sse-demo] {line}");
            }
        });
        Starting {
            child: Some(child),
            lines: forward_lines(stdout),
            ops: args.contains(&"--ops-bind"),
        }
    }

    /// Sends SIGTERM, as a service manager or `docker stop` would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Kills the process at once (SIGKILL): a crash, with no chance to flush anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, if the process exits within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the process with SIGTERM and asserts that it exits cleanly within `within`.
    pub fn stop(mut self, within: Duration) -> Duration {
        let started = Instant::now();
        self.terminate();
        let status = self
            .wait_exit(within)
            .unwrap_or_else(|| panic!("sse-demo still running {within:?} after SIGTERM"));
        assert!(status.success(), "sse-demo exited with {status}");
        started.elapsed()
    }
}

/// The binary to run: cargo's build of it, or `SSE_DEMO_BIN` when set. With a target directory
/// shared by several checkouts, `target/debug/sse-demo` is whichever checkout built last; its
/// twin in `target/debug/deps/sse_demo-<hash>` is this checkout's own.
pub fn binary() -> std::ffi::OsString {
    std::env::var_os("SSE_DEMO_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sse-demo").into())
}

/// A `sse-demo` process that may not listen yet; killed when dropped.
pub struct Starting {
    /// `None` once handed over to a [`Demo`].
    child: Option<Child>,
    lines: Receiver<String>,
    /// Whether an operations address is printed after the public one.
    ops: bool,
}

impl Starting {
    /// Waits up to 15 s for the address line; panics with the exit status if the process
    /// exits or stays silent instead.
    pub fn ready(self) -> Demo {
        self.try_ready()
            .unwrap_or_else(|failure| panic!("sse-demo did not start: {failure}"))
    }

    /// [`Starting::ready`], with the failure as a message instead of a panic.
    pub fn try_ready(mut self) -> Result<Demo, String> {
        let line = match self.lines.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => line,
            Err(err) => {
                let status = self.child.take().map(|mut child| {
                    let _ = child.kill();
                    child.wait()
                });
                return Err(match err {
                    RecvTimeoutError::Timeout => {
                        format!("printed no address within 15 s; killed: {status:?}")
                    }
                    RecvTimeoutError::Disconnected => {
                        format!("exited before printing its address: {status:?}")
                    }
                });
            }
        };
        let url = line
            .strip_prefix("sse-demo listening on ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        let addr = (url.split_once("://").map_or(url.as_str(), |(_, rest)| rest))
            .trim_end_matches('/')
            .parse()
            .map_err(|err| format!("address in {line:?}: {err}"))?;
        let ops = if self.ops {
            Some(self.ops_addr()?)
        } else {
            None
        };
        let child = self.child.take().ok_or("already handed over")?;
        Ok(Demo {
            child,
            url,
            addr,
            ops,
        })
    }

    /// The address of the `sse-demo operations on http://…/` line, which follows the public
    /// ones within a few seconds.
    fn ops_addr(&self) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = (self.lines.recv_timeout(left))
                .map_err(|err| format!("no operations address: {err}"))?;
            if let Some(url) = line.strip_prefix("sse-demo operations on http://") {
                return url
                    .trim_end_matches('/')
                    .parse()
                    .map_err(|err| format!("address in {line:?}: {err}"));
            }
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends each line read from `source` to the returned channel, from a thread.
pub fn forward_lines(source: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// An event stream opened with plain HTTP/1.1, after its `: connected` preamble arrived.
pub fn open_stream(addr: SocketAddr) -> TcpStream {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to sse-demo");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(
        stream,
        "GET /api/sse/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("send request");
    let mut received = Vec::new();
    let mut buf = [0; 1024];
    // Bounded by the read timeout and a size cap.
    while !String::from_utf8_lossy(&received).contains(": connected") {
        let n = stream
            .read(&mut buf)
            .expect("read the stream's first bytes");
        assert!(n > 0, "stream closed before its preamble");
        received.extend_from_slice(&buf[..n]);
        assert!(received.len() < 64 * 1024, "no preamble in {received:?}");
    }
    let head = String::from_utf8_lossy(&received);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

/// Whether the server closes `stream` within `within` (anything else it sends is skipped).
pub fn closes_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0; 1024];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .is_err()
        {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

/// Sends one request with a JSON body (`Connection: close`); returns the whole response, head
/// and body.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("read response");
    response
}
