//! The event contract: the catalogue of every event (registered at link time), and the two
//! documents made from it, AsyncAPI 3.0 and TypeScript declarations, served next to the
//! stream or written to files.

mod asyncapi;
mod catalogue;
pub(crate) mod probe;
mod typescript;

use std::io;
use std::path::Path;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

pub use crate::emit::TypedPayload;
pub use asyncapi::StreamServer;
pub use catalogue::{Catalogue, EventInfo, Location};
#[doc(hidden)] // for the code `#[emit_event]` generates
pub use catalogue::{PayloadInfo, Registration};

impl Catalogue {
    /// Writes `asyncapi.json` and `events.d.ts` into `dir` (created if missing), for front-end
    /// builds: from a test, or a small binary of your own.
    ///
    /// ```no_run
    /// use sse_core::contract::{Catalogue, StreamServer};
    ///
    /// let server = StreamServer::new("https", "api.example.com", "/api/sse/stream");
    /// Catalogue::linked().write_documents("web/generated", &server)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The I/O error of creating `dir` or writing either file.
    pub fn write_documents(&self, dir: impl AsRef<Path>, server: &StreamServer) -> io::Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("asyncapi.json"), self.asyncapi_text(server))?;
        std::fs::write(dir.join("events.d.ts"), self.typescript())
    }

    /// The AsyncAPI document as pretty-printed JSON with a final newline, as served and as
    /// written by [`Catalogue::write_documents`] (and so as a committed snapshot reads).
    pub fn asyncapi_text(&self, server: &StreamServer) -> String {
        let mut text = serde_json::to_string_pretty(&self.asyncapi(server))
            .unwrap_or_else(|err| format!("{{\"error\": {:?}}}", err.to_string()));
        text.push('\n');
        text
    }
}

/// Registers `GET {base}/asyncapi.json` and `GET {base}/events.d.ts`; the document advertises
/// `security`, the schemes of the broadcaster's authorizer.
pub(crate) fn routes(
    cfg: &mut web::ServiceConfig,
    base: &str,
    security: serde_json::Map<String, serde_json::Value>,
) {
    let path = base.to_owned();
    cfg.route(
        &format!("{base}/asyncapi.json"),
        web::get().to(move |req: HttpRequest| {
            let path = path.clone();
            let security = security.clone();
            async move {
                let info = req.connection_info();
                let mut server = StreamServer::new(info.scheme(), info.host(), &path);
                server.security = security;
                document(
                    "application/json",
                    Catalogue::collect_once().asyncapi_text(&server),
                )
            }
        }),
    );
    cfg.route(
        &format!("{base}/events.d.ts"),
        web::get().to(|| async {
            document(
                "application/typescript; charset=utf-8",
                Catalogue::collect_once().typescript(),
            )
        }),
    );
}

fn document(content_type: &'static str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
