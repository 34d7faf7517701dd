//! The engines the suite runs against, behind one trait: the in-memory fake, Redis Streams
//! and NATS JetStream, each with the faults the cases inject.

use sse_core::testing::MemoryStore;
use sse_core::{Broadcaster, BroadcasterBuilder};
use std::sync::Arc;

use crate::proxy::Proxy;
use crate::servers::Server;

/// One shared event stream, and what a case does to its engine.
#[allow(async_fn_in_trait)]
pub trait Engine: Sized {
    /// Whether what the engine stored survives [`Engine::stop`] and [`Engine::start`].
    const KEEPS_DATA: bool;
    async fn new(test: &str) -> Self;
    /// A builder for one more instance on the shared stream.
    fn builder(&mut self) -> BroadcasterBuilder;
    /// A builder for the one instance whose link to the engine [`Engine::cut`] cuts.
    fn cuttable(&mut self) -> BroadcasterBuilder;
    fn cut(&mut self, cut: bool);
    /// The engine goes down for every instance.
    async fn stop(&mut self);
    /// Back up, with what it stored if it [keeps data](Engine::KEEPS_DATA).
    async fn start(&mut self);
    /// Back up empty.
    async fn restart_empty(&mut self);
    /// Keeps only the newest `keep` entries (Redis, memory: events; NATS: messages, each a
    /// batch of events), as the engine's limits do by themselves.
    async fn trim(&mut self, keep: usize);
}

/// Waits until the instance has read the stream's epoch: its ids then name an entry of the
/// shared stream (`<epoch>-<a>-<b>`).
pub async fn connected(events: &Broadcaster) {
    crate::common::eventually("connected to the engine", || {
        events.last_event_id().to_string().matches('-').count() == 2
    })
    .await;
}

pub struct Memory {
    store: Arc<MemoryStore>,
    built: usize,
    cuttable: Option<usize>,
}

impl Engine for Memory {
    const KEEPS_DATA: bool = true;

    async fn new(_test: &str) -> Self {
        Memory {
            store: MemoryStore::new(100_000),
            built: 0,
            cuttable: None,
        }
    }

    fn builder(&mut self) -> BroadcasterBuilder {
        self.built += 1;
        Broadcaster::builder().memory_log(&self.store)
    }

    fn cuttable(&mut self) -> BroadcasterBuilder {
        self.cuttable = Some(self.built);
        self.builder()
    }

    fn cut(&mut self, cut: bool) {
        if let Some(i) = self.cuttable {
            self.store.set_online(i, !cut);
        }
    }

    async fn stop(&mut self) {
        for i in 0..self.built {
            self.store.set_online(i, false);
        }
    }

    async fn start(&mut self) {
        for i in 0..self.built {
            self.store.set_online(i, true);
        }
    }

    async fn restart_empty(&mut self) {
        self.store.restart_empty();
    }

    async fn trim(&mut self, keep: usize) {
        self.store.trim(keep);
    }
}

/// A server engine: Redis or NATS.
pub struct Served {
    server: Server,
    stream: String,
    proxy: Option<Proxy>,
    nats: bool,
}

impl Served {
    fn builder_for(&self, url: &str) -> BroadcasterBuilder {
        let builder = Broadcaster::builder();
        if self.nats {
            builder
                .nats(url, &self.stream)
                .expect("valid NATS settings")
        } else {
            builder.redis(url, &self.stream).expect("valid Redis URL")
        }
    }

    fn cuttable_builder(&mut self) -> BroadcasterBuilder {
        let target = format!("127.0.0.1:{}", self.server.port)
            .parse()
            .expect("an address");
        let proxy = Proxy::start(target);
        let scheme = if self.nats { "nats" } else { "redis" };
        let url = format!("{scheme}://{}", proxy.addr);
        self.proxy = Some(proxy);
        self.builder_for(&url)
    }

    fn cut_link(&mut self, cut: bool) {
        if let Some(proxy) = &self.proxy {
            if cut {
                proxy.cut(true);
            } else {
                proxy.resume();
            }
        }
    }
}

/// A stream name no other test (or earlier run) uses.
fn unique_stream(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sse-test-{test}-{}-{nanos}", std::process::id())
}

macro_rules! served {
    ($name:ident, $start:ident, $nats:expr, $keeps:expr) => {
        pub struct $name(Served);

        impl Engine for $name {
            const KEEPS_DATA: bool = $keeps;

            async fn new(test: &str) -> Self {
                $name(Served {
                    server: Server::$start().await,
                    stream: unique_stream(test),
                    proxy: None,
                    nats: $nats,
                })
            }

            fn builder(&mut self) -> BroadcasterBuilder {
                self.0.builder_for(&self.0.server.url())
            }

            fn cuttable(&mut self) -> BroadcasterBuilder {
                self.0.cuttable_builder()
            }

            fn cut(&mut self, cut: bool) {
                self.0.cut_link(cut);
            }

            async fn stop(&mut self) {
                self.0.server.stop();
            }

            async fn start(&mut self) {
                self.0.server.restart(false).await;
            }

            async fn restart_empty(&mut self) {
                self.0.server.restart(true).await;
            }

            async fn trim(&mut self, keep: usize) {
                self.0.server.trim(&self.0.stream, keep).await;
            }
        }
    };
}

// Redis runs without persistence here: a restart is empty. NATS keeps its storage directory.
served!(Redis, redis, false, false);
served!(Nats, nats, true, true);
