//! Discovery: a middleware that tells clients where the hub is, with the `Link` header
//! Mercure defines.

use std::future::{ready, Ready};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderValue};
use futures_core::future::LocalBoxFuture;

/// Adds `Link: <hub>; rel="mercure"` to every response, beside any `Link` the handler set,
/// so that a client finds the hub from any resource of the application.
///
/// ```
/// use actix_web::App;
/// use sse_core::mercure::Discovery;
///
/// let app = App::new().wrap(Discovery::new("/.well-known/mercure"));
/// ```
#[derive(Clone, Debug)]
pub struct Discovery {
    link: HeaderValue,
}

impl Discovery {
    /// Points to the hub at `url` (absolute, or a path on this origin). A URL that cannot be
    /// a header value (a line break in it) is left out, with an error logged once here.
    pub fn new(url: &str) -> Self {
        let link =
            HeaderValue::from_str(&format!("<{url}>; rel=\"mercure\"")).unwrap_or_else(|_| {
                tracing::error!("the Mercure hub URL cannot go in a Link header; discovery is off");
                HeaderValue::from_static("")
            });
        Self { link }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Discovery
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
    S::Future: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Transform = DiscoveryService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(DiscoveryService {
            service,
            link: self.link.clone(),
        }))
    }
}

/// The service made by [`Discovery`].
#[derive(Debug)]
pub struct DiscoveryService<S> {
    service: S,
    link: HeaderValue,
}

impl<S, B> Service<ServiceRequest> for DiscoveryService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
    S::Future: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, S::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let link = self.link.clone();
        let response = self.service.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            if !link.is_empty() {
                response.headers_mut().append(header::LINK, link);
            }
            Ok(response)
        })
    }
}
