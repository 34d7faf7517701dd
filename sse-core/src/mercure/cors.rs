//! CORS on the hub ([`Mercure::cors_origins`](super::Mercure::cors_origins)), with
//! `actix-cors`: preflight answers, and the headers that let a page of a listed origin
//! subscribe, publish and read the subscriptions API with credentials (the
//! `mercureAuthorization` cookie).

use actix_cors::Cors;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Condition;

/// The hub's CORS middleware; with no origins it is off and changes nothing.
///
/// An allowed origin is echoed (with credentials a browser refuses
/// `Access-Control-Allow-Origin: *`, so `*` in the list echoes any origin). A request from
/// another origin is served without CORS headers, which the browser reports; its preflight
/// is refused (400).
pub(super) fn layer(origins: &[String]) -> Condition<Cors> {
    let listed: Vec<String> = origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .collect();
    let enabled = !listed.is_empty();
    let cors = Cors::default()
        .allowed_origin_fn(move |origin, _| allowed(&listed, origin))
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CACHE_CONTROL,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        // What a page may read besides the safelisted headers: where its stream started.
        .expose_headers([HeaderName::from_static("last-event-id")])
        .supports_credentials()
        .max_age(3600)
        .block_on_origin_mismatch(false);
    Condition::new(enabled, cors)
}

/// Whether `origin` is one of `listed` (`*` stands for any).
fn allowed(listed: &[String], origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    listed
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_origins_and_the_wildcard_are_allowed_others_not() {
        let listed = ["https://app.example.com".to_owned()];
        let origin = |o: &'static str| HeaderValue::from_static(o);
        assert!(allowed(&listed, &origin("https://app.example.com")));
        assert!(allowed(&listed, &origin("HTTPS://APP.example.com")));
        assert!(!allowed(&listed, &origin("https://evil.example.org")));
        assert!(allowed(&["*".to_owned()], &origin("https://x.example")));
    }
}
