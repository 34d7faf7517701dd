//! Private engine servers for the tests: a `redis-server` or a `nats-server -js` on a free
//! loopback port of its own, optionally TLS-only, with stop and restart on the same port.
//! Killed when dropped (even when the test fails); every start waits at most [`WAIT`].
//!
//! Tests that only need *a* server use the shared ones (Redis on 6379, NATS on 4222); these
//! are for tests that stop, restart, flush or reconfigure the server.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::TlsFiles;
use crate::WAIT;

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A private `redis-server` without persistence: a restart starts it empty.
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    tls: Option<TlsFiles>,
    child: Option<Child>,
}

impl Redis {
    /// Starts one in plain text and waits until it answers `PING`.
    pub async fn start() -> Redis {
        Redis::launch(None).await
    }

    /// Starts one with only a TLS port, serving `files`' certificate (clients are not asked
    /// for one), and waits until it listens. It listens on 127.0.0.2 too, which is loopback
    /// but not in the test certificate: tests check the name with it.
    pub async fn start_tls(files: &TlsFiles) -> Redis {
        Redis::launch(Some(files.clone())).await
    }

    async fn launch(tls: Option<TlsFiles>) -> Redis {
        let mut redis = Redis {
            port: free_port(),
            tls,
            child: None,
        };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://` when it is TLS-only.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills it at once, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, empty) on the same port and waits until it is up.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command.args(["--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => command.args(["--port", &port, "--bind", "127.0.0.1"]),
            Some(files) => command
                .args(["--port", "0", "--tls-port", &port])
                .args(["--bind", "127.0.0.1", "127.0.0.2"])
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", "no"]),
        };
        self.child = Some(spawn(command, "redis-server"));
        let deadline = Instant::now() + WAIT;
        loop {
            let up = match self.tls {
                None => self.command("PING", "+PONG\r\n").await,
                // A TLS handshake is not worth writing here: listening is enough.
                Some(_) => tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok(),
            };
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends one inline command (plain text only) and tells whether the reply is `reply`
    /// (within a second).
    pub async fn command(&self, command: &str, reply: &str) -> bool {
        let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = vec![0u8; reply.len()];
        conn.write_all(format!("{command}\r\n").as_bytes())
            .await
            .is_ok()
            && tokio::time::timeout(Duration::from_secs(1), conn.read_exact(&mut buf))
                .await
                .is_ok_and(|r| r.is_ok())
            && buf == reply.as_bytes()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private `nats-server -js` whose JetStream storage is kept across a restart unless asked
/// to be emptied, and removed when dropped.
pub struct Nats {
    /// Its port on 127.0.0.1.
    pub port: u16,
    store: PathBuf,
    tls: Option<TlsFiles>,
    child: Option<Child>,
}

impl Nats {
    /// Starts one in plain text and waits until it greets clients.
    pub async fn start() -> Nats {
        Nats::launch(None).await
    }

    /// Starts one that requires TLS from its clients, with `files`' certificate, and waits
    /// until it greets them (in plain text, as NATS does: its `INFO` says TLS is required,
    /// which this checks, and the client upgrades before anything else).
    pub async fn start_tls(files: &TlsFiles) -> Nats {
        let nats = Nats::launch(Some(files.clone())).await;
        let info = nats.info().unwrap_or_default();
        assert!(
            info.contains(r#""tls_required":true"#),
            "the server does not require TLS: {info}"
        );
        nats
    }

    async fn launch(tls: Option<TlsFiles>) -> Nats {
        let port = free_port();
        let store =
            std::env::temp_dir().join(format!("sse-test-nats-{}-{port}", std::process::id()));
        let mut nats = Nats {
            port,
            store,
            tls,
            child: None,
        };
        nats.restart(true).await;
        nats
    }

    /// `nats://127.0.0.1:<port>` (a client upgrades to TLS when the server requires it).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it cleanly (SIGTERM, so its storage is complete; killed after 5 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `kill` the command, not libc: this crate forbids `unsafe` as the workspace does.
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if signalled {
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

    /// Starts it again on the same port, with its storage emptied if `empty`, and waits until
    /// it greets clients.
    pub async fn restart(&mut self, empty: bool) {
        self.stop();
        if empty {
            let _ = std::fs::remove_dir_all(&self.store);
        }
        let mut command = Command::new("nats-server");
        command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store);
        if let Some(files) = &self.tls {
            command
                .arg("--tls")
                .arg("--tlscert")
                .arg(&files.cert)
                .arg("--tlskey")
                .arg(&files.key);
        }
        self.child = Some(spawn(command, "nats-server"));
        let deadline = Instant::now() + WAIT;
        while self.info().is_none() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `INFO` line the server greets a client with (in plain text even when it requires
    /// TLS), or `None` if it does not within a second.
    pub fn info(&self) -> Option<String> {
        let conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).ok()?;
        line.starts_with("INFO ").then_some(line)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn spawn(mut command: Command, binary: &str) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("{binary} on PATH: {err}"))
}
