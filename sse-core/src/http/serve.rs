//! Serving with a clean shutdown, in this order: stop accepting; end the streams (they never
//! end by themselves); let the requests in flight finish and publish their events; then close
//! the broadcaster and flush what is queued for the engine.

use actix_web::dev::{Server, ServerHandle};

use crate::fanout::Broadcaster;

impl Broadcaster {
    /// Runs `server` until it stops. On SIGINT (Ctrl-C) or SIGTERM it stops as
    /// [`stop_server`](Broadcaster::stop_server) does: streams end at once (instead of actix
    /// waiting `shutdown_timeout` for them), requests in flight finish and their events are
    /// published, and events queued for the engine get their flush timeout.
    ///
    /// Build the server with [`HttpServer::disable_signals`] so that the streams are always
    /// ended before actix starts draining; with actix's own signal handling left on, both
    /// react to the signal and the shutdown may take up to about a second longer (actix
    /// re-checks open connections once a second).
    ///
    /// # Errors
    ///
    /// What the server's own future returns: an I/O error of actix's accept loop.
    ///
    /// [`HttpServer::disable_signals`]: actix_web::HttpServer::disable_signals
    pub async fn serve(&self, server: Server) -> std::io::Result<()> {
        let events = self.clone();
        let handle = server.handle();
        let watcher = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received; closing event streams");
            events.stop_server(&handle, true).await;
        });
        let result = server.await;
        // However the server stopped: no stream is served any more, and events still on their
        // way to the event log engine get their flush timeout before the process exits.
        self.shutdown();
        self.flushed().await;
        watcher.abort();
        result
    }

    /// Stops the server and the broadcaster, in the order that loses nothing: the server
    /// stops accepting, every open stream ends (its client reconnects to another instance and
    /// resumes), the requests in flight finish (with `graceful`; see [`ServerHandle::stop`])
    /// and publish their events, then the broadcaster shuts down and the events still on
    /// their way to the engine get the flush timeout ([`Broadcaster::flushed`]).
    pub async fn stop_server(&self, server: &ServerHandle, graceful: bool) {
        // `stop` sends the command when called: accepting stops before the streams end, so a
        // client that reconnects at once reaches another instance.
        let stopped = server.stop(graceful);
        self.end_streams();
        stopped.await;
        self.shutdown();
        self.flushed().await;
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C closes streams");
                ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

/// Resolves on Ctrl-C; never, if the signal cannot be listened for.
async fn ctrl_c() {
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::warn!(%err, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
}
