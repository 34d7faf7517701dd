//! Serving with a clean shutdown: streams end first, then actix stops.

use actix_web::dev::{Server, ServerHandle};

use crate::fanout::Broadcaster;

impl Broadcaster {
    /// Runs `server` until it stops. On SIGINT (Ctrl-C) or SIGTERM it first ends every open
    /// stream, then asks the server for a graceful stop, so the shutdown finishes at once
    /// instead of waiting `shutdown_timeout` for streams that never end by themselves.
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

    /// Ends every open stream, stops the server (see [`ServerHandle::stop`]), and waits for
    /// the events still on their way to the event log engine ([`Broadcaster::flushed`]).
    pub async fn stop_server(&self, server: &ServerHandle, graceful: bool) {
        self.shutdown();
        server.stop(graceful).await;
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
