//! The engine servers of the suite, one type for both: `test-support`'s private
//! `redis-server` (a restart is empty) or `nats-server -js` (storage kept across a restart
//! unless asked to be empty), plus trimming a stream as the server's own limits would.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::WAIT;

/// The process, started and stopped by `test-support`.
enum Process {
    Redis(test_support::servers::Redis),
    Nats(test_support::servers::Nats),
}

pub struct Server {
    pub port: u16,
    process: Process,
}

impl Server {
    pub async fn redis() -> Server {
        let redis = test_support::servers::Redis::start().await;
        Server {
            port: redis.port,
            process: Process::Redis(redis),
        }
    }

    pub async fn nats() -> Server {
        let nats = test_support::servers::Nats::start().await;
        Server {
            port: nats.port,
            process: Process::Nats(nats),
        }
    }

    pub fn url(&self) -> String {
        match &self.process {
            Process::Redis(redis) => redis.url(),
            Process::Nats(nats) => nats.url(),
        }
    }

    /// Stops it: NATS cleanly (SIGTERM, so its storage is complete), Redis at once.
    pub fn stop(&mut self) {
        match &mut self.process {
            Process::Redis(redis) => redis.stop(),
            Process::Nats(nats) => nats.stop(),
        }
    }

    /// Starts it again on the same port (Redis always empty; NATS empty if `empty`) and
    /// waits until it answers.
    pub async fn restart(&mut self, empty: bool) {
        match &mut self.process {
            Process::Redis(redis) => redis.restart().await,
            Process::Nats(nats) => nats.restart(empty).await,
        }
    }

    /// Trims `stream` to its newest `keep` entries (Redis) or messages (NATS), as the
    /// server's own limits would.
    pub async fn trim(&self, stream: &str, keep: usize) {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("the server answers");
        let (request, done, failed): (String, &str, &str) = match self.process {
            Process::Redis(_) => (format!("XTRIM {stream} MAXLEN {keep}\r\n"), ":", "-"),
            Process::Nats(_) => {
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
        let reply = match self.process {
            Process::Redis(_) => reply.as_ref(),
            Process::Nats(_) => reply.split_once("MSG ").map_or("", |(_, m)| m),
        };
        assert!(
            answered.is_ok() && reply.contains(done),
            "trim refused: {reply:?}"
        );
    }
}
