//! Snapshot ids: every response says which event its data is as new as, so that a client can
//! load a snapshot and then subscribe from exactly that point.

use std::future::{ready, Ready};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_core::future::LocalBoxFuture;

use crate::fanout::Broadcaster;

/// The response header [`SnapshotIdMiddleware`] adds: the id of the last event published
/// before the request was handled.
pub const SNAPSHOT_ID_HEADER: &str = "sse-last-event-id";

impl Broadcaster {
    /// A middleware that stamps every response with `SSE-Last-Event-ID: <id>`, the id of the
    /// last event published before the handler ran. A page that loads a snapshot
    /// (`GET /api/users`) subscribes with that id as its `Last-Event-ID` (the browser client's
    /// `connect(path, { after: id })`): it gets every event after the snapshot, and none is
    /// lost between the two.
    ///
    /// ```
    /// use actix_web::App;
    /// use sse_core::Broadcaster;
    ///
    /// let events = Broadcaster::new();
    /// let app = App::new()
    ///     .wrap(events.snapshot_id_middleware())
    ///     .configure(events.service("/events"));
    /// ```
    ///
    /// For a cross-origin page, expose the header with CORS (`Access-Control-Expose-Headers`).
    pub fn snapshot_id_middleware(&self) -> SnapshotIdMiddleware {
        SnapshotIdMiddleware {
            events: self.clone(),
        }
    }
}

/// Adds [`SNAPSHOT_ID_HEADER`] to every response; made by
/// [`Broadcaster::snapshot_id_middleware`].
///
/// ```
/// # use sse_core::Broadcaster;
/// let middleware: sse_core::http::SnapshotIdMiddleware = Broadcaster::new().snapshot_id_middleware();
/// ```
#[derive(Clone, Debug)]
pub struct SnapshotIdMiddleware {
    events: Broadcaster,
}

impl<S, B> Transform<S, ServiceRequest> for SnapshotIdMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
    S::Future: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Transform = SnapshotIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SnapshotIdService {
            service,
            events: self.events.clone(),
        }))
    }
}

/// The service made by [`SnapshotIdMiddleware`].
#[derive(Debug)]
pub struct SnapshotIdService<S> {
    service: S,
    events: Broadcaster,
}

impl<S, B> Service<ServiceRequest> for SnapshotIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
    S::Future: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, S::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Taken BEFORE the handler runs. Events are published after their change is stored
        // (`#[emit_event]` publishes once the handler succeeded), so every event up to this id
        // describes a change the handler's read will see. Any change the read misses is
        // published later, with a later id, and a client subscribing after this id gets it.
        // Taken after the handler, an event published between the handler's read and the
        // stamp would be at or before the id yet missing from the snapshot: lost. The price of
        // "before" is the other way round and harmless for state events: a change stored
        // while the handler ran can be both in the snapshot and delivered after it, with the
        // same content (an upsert by version or a delete applies once either way).
        let id = HeaderValue::from_str(&self.events.last_event_id().to_string()).ok();
        let response = self.service.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(id) = id {
                (response.headers_mut()).insert(HeaderName::from_static(SNAPSHOT_ID_HEADER), id);
            }
            Ok(response)
        })
    }
}
