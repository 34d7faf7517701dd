//! Shared helpers: a real actix server on an ephemeral loopback port, a raw TCP client, and
//! the workspace's SSE reader (from `test-support`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// Not every test binary names the event type.
#[allow(unused_imports)]
pub use test_support::sse::{Event, SseClient};
pub use test_support::WAIT;

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Starts a server with `workers` workers whose `App` is configured by `configure`.
pub fn start<F>(workers: usize, configure: F) -> TestServer
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    launch(workers, configure, None)
}

/// [`serve`], with each connection's send buffer fixed at `bytes` (no autotuning, which would
/// let the kernel take megabytes for a client that does not read).
pub fn serve_with_send_buffer(
    events: &sse_core::Broadcaster,
    path: &'static str,
    bytes: libc::c_int,
) -> TestServer {
    let events = events.clone();
    launch(1, move |cfg| events.service(path)(cfg), Some(bytes))
}

fn launch<F>(workers: usize, configure: F, send_buffer: Option<libc::c_int>) -> TestServer
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    raise_fd_limit();
    let server = HttpServer::new(move || App::new().configure(configure.clone()))
        .on_connect(move |conn, _| {
            use std::os::fd::AsRawFd;
            let (Some(size), Some(tcp)) = (send_buffer, conn.downcast_ref::<TcpStream>()) else {
                return;
            };
            // SAFETY: sets one option of a socket this process owns, from a live c_int.
            #[allow(unsafe_code)]
            let set = unsafe {
                libc::setsockopt(
                    tcp.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    std::ptr::from_ref(&size).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(set, 0, "SO_SNDBUF");
        })
        .workers(workers)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind to an ephemeral loopback port");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let task = actix_web::rt::spawn(server);
    TestServer { addr, handle, task }
}

/// Starts a one-worker server with `events`' ready-made endpoint at `path`.
pub fn serve(events: &sse_core::Broadcaster, path: &'static str) -> TestServer {
    let events = events.clone();
    start(1, move |cfg| events.service(path)(cfg))
}

/// Raises the soft limit on open files to the hard limit: some tests hold 2000+ sockets.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    #[allow(unsafe_code)]
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A bare TCP client that sends the request and reads the response head; it then reads only
/// when told to, which makes it a stalled client.
pub struct RawClient {
    pub stream: TcpStream,
    pub head: String,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, path: &str, recv_buffer: Option<u32>) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let mut stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .expect("send request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        tokio::time::timeout(WAIT, async {
            while !head.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut byte).await.expect("read head");
                assert!(n > 0, "connection closed before the response head");
                head.push(byte[0]);
            }
        })
        .await
        .expect("response head in time");
        RawClient {
            stream,
            head: String::from_utf8_lossy(&head).into_owned(),
        }
    }

    /// Reads until `needle` appears in the body (raw chunked bytes) or the stream ends.
    pub async fn read_until(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let n = self.stream.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return false;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    return true;
                }
            }
        })
        .await;
        let seen = String::from_utf8_lossy(&seen).into_owned();
        assert!(
            matches!(found, Ok(true)),
            "{needle:?} not seen; got {seen:?}"
        );
        seen
    }

    /// Reads until the server closes the connection; returns false after [`WAIT`].
    pub async fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(WAIT, async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}

/// The body of a chunked response (`<hex size>\r\n<bytes>\r\n`...), as far as it goes.
pub fn dechunk(raw: &str) -> String {
    let mut body = String::new();
    let mut rest = raw;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            body.push_str(after.get(..size.min(after.len())).unwrap_or_default());
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or_default();
    }
    body
}

/// Polls `cond` every 20 ms until it holds; fails the test after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
