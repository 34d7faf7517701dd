//! The browser client, served next to the stream: `{path}/client.js` (an ES module, no
//! dependencies) and its types, `{path}/client.d.ts`. The sources are `sse-core/assets/`,
//! tested there with node (`sse-core/tests/client_js.rs`).

use actix_web::http::header;
use actix_web::HttpResponse;

const CLIENT_JS: &str = include_str!("../../assets/client.js");
const CLIENT_D_TS: &str = include_str!("../../assets/client.d.ts");

/// `GET {path}/client.js`.
pub(super) async fn client_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CLIENT_JS)
}

/// `GET {path}/client.d.ts`.
pub(super) async fn client_d_ts() -> HttpResponse {
    asset("application/typescript; charset=utf-8", CLIENT_D_TS)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        // Revalidated on each load, so a page never runs a client older than its server.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
