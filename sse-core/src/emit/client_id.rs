//! Exclude the sender: the client id of the request being handled, for
//! `#[emit_event(.., to_others)]`.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use tokio::task::futures::TaskLocalFuture;

/// The header that names the client on a mutating request and, alternatively to
/// `?client_id=`, on its stream request.
pub const CLIENT_ID_HEADER: &str = "x-sse-client-id";

/// Longest client id accepted, in bytes.
const MAX_CLIENT_ID_LEN: usize = 128;

tokio::task_local! {
    static CLIENT_ID: Option<Arc<str>>;
}

/// The client id of the request being handled, if the middleware saw one.
pub(crate) fn current() -> Option<Arc<str>> {
    CLIENT_ID.try_with(Clone::clone).ok().flatten()
}

/// Whether the middleware wraps the current task at all (to tell a missing setup apart from a
/// request without the header).
pub(crate) fn middleware_active() -> bool {
    CLIENT_ID.try_with(|_| ()).is_ok()
}

/// A client id: 1 to 128 visible ASCII characters.
pub(crate) fn parse_client_id(raw: &[u8]) -> Result<Arc<str>, &'static str> {
    if raw.is_empty() || raw.len() > MAX_CLIENT_ID_LEN {
        return Err("a client id must be 1 to 128 characters long");
    }
    if !raw.iter().all(u8::is_ascii_graphic) {
        return Err("a client id must be visible ASCII characters");
    }
    // Checked above: ASCII is UTF-8.
    Ok(Arc::from(String::from_utf8_lossy(raw).as_ref()))
}

/// Middleware that reads the `X-SSE-Client-Id` header of each request, so that the
/// `#[emit_event(.., to_others)]` handlers it runs skip the stream of that client.
///
/// ```
/// use actix_web::App;
/// use sse_core::http::ClientIdMiddleware;
/// use sse_core::Broadcaster;
///
/// let events = Broadcaster::new();
/// let app = App::new()
///     .wrap(ClientIdMiddleware)
///     .configure(events.service("/events"));
/// ```
///
/// A header that is not a valid client id is ignored (the request is handled as usual, and
/// its events are echoed to everyone).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientIdMiddleware;

impl<S, B> Transform<S, ServiceRequest> for ClientIdMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Transform = ClientIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ClientIdService { service }))
    }
}

/// The service made by [`ClientIdMiddleware`].
#[derive(Debug)]
pub struct ClientIdService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for ClientIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Future = TaskLocalFuture<Option<Arc<str>>, S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id =
            req.headers()
                .get(CLIENT_ID_HEADER)
                .and_then(|v| match parse_client_id(v.as_bytes()) {
                    Ok(id) => Some(id),
                    Err(reason) => {
                        tracing::debug!(reason, "ignored an invalid X-SSE-Client-Id header");
                        None
                    }
                });
        CLIENT_ID.scope(id, self.service.call(req))
    }
}
