//! Private engine servers on free loopback ports, stopped when dropped (even on failure):
//! `redis-server` (no persistence: a restart is empty) and `nats-server -js` (a storage
//! directory kept across a restart unless it is asked to be empty).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::WAIT;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Which server, and how to run it.
pub enum Kind {
    Redis,
    Nats { dir: PathBuf },
}

pub struct Server {
    pub port: u16,
    kind: Kind,
    child: Option<Child>,
}

impl Server {
    pub async fn redis() -> Server {
        Self::start(Kind::Redis).await
    }

    pub async fn nats() -> Server {
        let dir = std::env::temp_dir().join(format!(
            "sse-test-nats-{}-{}",
            std::process::id(),
            free_port()
        ));
        Self::start(Kind::Nats { dir }).await
    }

    async fn start(kind: Kind) -> Server {
        let mut server = Server {
            port: free_port(),
            kind,
            child: None,
        };
        server.restart(false).await;
        server
    }

    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats { .. } => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Stops it: NATS cleanly (SIGTERM, so its storage is complete), Redis at once.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let (Kind::Nats { .. }, Ok(pid)) = (&self.kind, i32::try_from(child.id())) {
            // SAFETY: signals our own child process.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again on the same port (Redis always empty; NATS empty if `empty`) and
    /// waits until it answers.
    pub async fn restart(&mut self, empty: bool) {
        self.stop();
        let port = self.port.to_string();
        let mut command = match &self.kind {
            Kind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port, "--bind", "127.0.0.1"]).args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]);
                c
            }
            Kind::Nats { dir } => {
                if empty {
                    let _ = std::fs::remove_dir_all(dir);
                }
                let mut c = Command::new("nats-server");
                c.args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
                    .arg(dir);
                c
            }
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server binary on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while !self.answers().await {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Trims `stream` to its newest `keep` entries (Redis) or messages (NATS), as the
    /// server's own limits would.
    pub async fn trim(&self, stream: &str, keep: usize) {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("the server answers");
        let (request, done, failed): (String, &str, &str) = match self.kind {
            Kind::Redis => (format!("XTRIM {stream} MAXLEN {keep}\r\n"), ":", "-"),
            Kind::Nats { .. } => {
                let body = format!("{{\"keep\":{keep}}}");
                let request = format!(
                    "CONNECT {{\"verbose\":false}}\r\nSUB _INBOX.trim 1\r\n\
                     PUB $JS.API.STREAM.PURGE.{stream} _INBOX.trim {}\r\n{body}\r\n",
                    body.len()
                );
                (request, "\"success\":true", "\"error\"")
            }
        };
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut reply = Vec::new();
        let mut buf = [0u8; 1024];
        let answered = tokio::time::timeout(WAIT, async {
            loop {
                let n = conn.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                reply.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&reply);
                // Past the NATS server's greeting: only the reply counts.
                let text = text.split_once("MSG ").map_or(text.as_ref(), |(_, m)| m);
                if text.contains(done) || text.contains(failed) {
                    return;
                }
            }
        })
        .await;
        let reply = String::from_utf8_lossy(&reply);
        let reply = match self.kind {
            Kind::Redis => reply.as_ref(),
            Kind::Nats { .. } => reply.split_once("MSG ").map_or("", |(_, m)| m),
        };
        assert!(
            answered.is_ok() && reply.contains(done),
            "trim refused: {reply:?}"
        );
    }

    async fn answers(&self) -> bool {
        let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let (send, expect): (&[u8], &[u8]) = match self.kind {
            Kind::Redis => (b"PING\r\n", b"+PONG"),
            // The server greets first.
            Kind::Nats { .. } => (b"", b"INFO "),
        };
        let mut buf = vec![0u8; expect.len()];
        conn.write_all(send).await.is_ok()
            && tokio::time::timeout(Duration::from_secs(1), conn.read_exact(&mut buf))
                .await
                .is_ok_and(|r| r.is_ok())
            && buf == expect
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if let Kind::Nats { dir } = &self.kind {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
