//! CORS on the hub ([`Mercure::cors_origins`](super::Mercure::cors_origins)): preflight
//! answers, and the headers that let a page of a listed origin subscribe, publish and read
//! the subscriptions API with credentials (the `mercureAuthorization` cookie).

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpResponse;
use futures_core::future::LocalBoxFuture;

/// What a preflight allows: the hub's methods and the headers its clients send.
const METHODS: &str = "GET, POST";
const HEADERS: &str = "authorization, cache-control, content-type, last-event-id";
/// What a page may read of a response besides the safelisted headers.
const EXPOSED: &str = "last-event-id";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "3600";

/// The hub's CORS middleware: with no origins it changes nothing.
#[derive(Clone, Debug)]
pub(super) struct HubCors {
    origins: Arc<[String]>,
}

impl HubCors {
    pub(super) fn new(origins: &[String]) -> Self {
        Self {
            origins: origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }
}

/// The request's `Origin` when it is one of `origins` (`*` stands for any): the value to
/// send back, since with credentials a browser refuses `Access-Control-Allow-Origin: *`.
fn allowed(origins: &[String], headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    (origins.iter())
        .any(|o| o == "*" || o.eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

impl<S, B> Transform<S, ServiceRequest> for HubCors
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = HubCorsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(HubCorsService {
            service,
            origins: self.origins.clone(),
        }))
    }
}

/// The service made by [`HubCors`].
#[derive(Debug)]
pub(super) struct HubCorsService<S> {
    service: S,
    origins: Arc<[String]>,
}

impl<S, B> Service<ServiceRequest> for HubCorsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if self.origins.is_empty() {
            let response = self.service.call(req);
            return Box::pin(async move { Ok(response.await?.map_into_left_body()) });
        }
        let origin = allowed(&self.origins, req.headers());
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let response = preflight_response(origin);
            return Box::pin(async move { Ok(req.into_response(response).map_into_right_body()) });
        }
        let response = self.service.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            let headers = response.headers_mut();
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
            if let Some(origin) = origin {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSED),
                );
            }
            Ok(response.map_into_left_body())
        })
    }
}

/// 204 with what the hub allows for an allowed origin; 403 without any CORS header for
/// another, which the browser reports as a failed preflight.
fn preflight_response(origin: Option<HeaderValue>) -> HttpResponse {
    let vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
    let Some(origin) = origin else {
        return HttpResponse::build(StatusCode::FORBIDDEN)
            .insert_header((header::VARY, vary))
            .content_type("text/plain; charset=utf-8")
            .body("this origin is not among the hub's CORS origins");
    };
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, METHODS))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, HEADERS))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
        .insert_header((header::VARY, vary))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("a header value"),
        );
        headers
    }

    #[test]
    fn listed_origins_and_the_wildcard_are_echoed_others_not() {
        let listed = HubCors::new(&["https://app.example.com/".to_owned()]);
        let echoed = allowed(&listed.origins, &with_origin("https://app.example.com"));
        assert_eq!(
            echoed.as_ref().map(|v| v.as_bytes()),
            Some(&b"https://app.example.com"[..])
        );
        assert!(allowed(&listed.origins, &with_origin("https://evil.example.org")).is_none());
        assert!(allowed(&listed.origins, &HeaderMap::new()).is_none());
        let any = HubCors::new(&["*".to_owned()]);
        let echoed = allowed(&any.origins, &with_origin("https://x.example"));
        assert_eq!(
            echoed.as_ref().map(|v| v.as_bytes()),
            Some(&b"https://x.example"[..])
        );
    }
}
