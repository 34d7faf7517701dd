//! How `#[emit_event]` finds the payload in a handler's return value.

use actix_web::http::StatusCode;
use actix_web::web::Json;
use actix_web::Either;
use serde::Serialize;

use super::dispatch::{dispatch, EventSpec};

/// A handler return type from which [`#[emit_event]`](crate::emit_event) can read the event
/// payload.
///
/// Implemented for `web::Json<T>` and for `Result`, `Option`, `(R, StatusCode)` and
/// `Either` around such types: an `Err`, a `None` or a non-2xx status publishes nothing.
/// Implement it for your own responder types:
///
/// ```
/// use actix_web::{body::BoxBody, HttpRequest, HttpResponse, Responder};
/// use sse_core::{EventPayload, PayloadWriter};
///
/// #[derive(serde::Serialize)]
/// struct User { id: u64 }
///
/// struct Created(User);
///
/// impl Responder for Created {
///     type Body = BoxBody;
///     fn respond_to(self, _: &HttpRequest) -> HttpResponse {
///         HttpResponse::Created().json(&self.0)
///     }
/// }
///
/// impl EventPayload for Created {
///     fn write_payload(&self, out: PayloadWriter<'_>) {
///         out.serialize(&self.0);
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`#[emit_event]` cannot find an event payload in a handler that returns `{Self}`",
    label = "`#[emit_event]` needs to read the payload from this return type",
    note = "return `web::Json<T>` with `T: serde::Serialize`, possibly inside `Result<_, E>`, `Option<_>`, `(_, StatusCode)` or `Either<_, _>`",
    note = "`HttpResponse` and `impl Responder` hide their payload; for a responder type of your own, implement `sse_core::EventPayload` for it"
)]
pub trait EventPayload {
    /// Hands the payload to `out`, or returns without calling it when there is nothing to
    /// publish (an error, `None`, a non-success status).
    fn write_payload(&self, out: PayloadWriter<'_>);
}

/// Receives the payload of an event from an [`EventPayload`] implementation.
pub struct PayloadWriter<'a> {
    pub(super) events: &'a [EventSpec<'a>],
}

impl PayloadWriter<'_> {
    /// Serializes `payload` once and publishes it as each of the handler's events.
    ///
    /// A payload that fails to serialize, or whose fields cannot fill a topic template, is
    /// logged and counted; the handler's response is not affected.
    pub fn serialize<T: Serialize + ?Sized>(self, payload: &T) {
        dispatch(self.events, payload);
    }
}

/// Called by the code that `#[emit_event]` generates.
#[doc(hidden)]
pub fn emit<T: EventPayload + ?Sized>(events: &[EventSpec<'_>], output: &T) {
    output.write_payload(PayloadWriter { events });
}

/// Called by the code that `#[emit_event(.., payload = path)]` generates, with
/// `|t| path(t)`: the projection of the payload is what is serialized and published. The
/// bounds make a `path` of the wrong signature a type error at the user's `path`.
#[doc(hidden)]
pub fn emit_with<O, F, P>(events: &[EventSpec<'_>], output: &O, project: F)
where
    O: TypedPayload + ?Sized,
    F: FnOnce(&O::Payload) -> P,
    P: Serialize,
{
    output.with_payload(|payload| dispatch(events, &project(payload)));
}

impl<T: Serialize> EventPayload for Json<T> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        out.serialize(&self.0);
    }
}

impl<T: EventPayload, E> EventPayload for Result<T, E> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        if let Ok(value) = self {
            value.write_payload(out);
        }
    }
}

impl<T: EventPayload> EventPayload for Option<T> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        if let Some(value) = self {
            value.write_payload(out);
        }
    }
}

/// Publishes only when the status is a success (2xx).
impl<T: EventPayload> EventPayload for (T, StatusCode) {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        if self.1.is_success() {
            self.0.write_payload(out);
        }
    }
}

impl<L: EventPayload, R: EventPayload> EventPayload for Either<L, R> {
    fn write_payload(&self, out: PayloadWriter<'_>) {
        match self {
            Either::Left(l) => l.write_payload(out),
            Either::Right(r) => r.write_payload(out),
        }
    }
}

/// A return type whose payload is one known type, `Self::Payload`: what
/// `#[emit_event(.., payload = path)]` hands to `path`, and what the event catalogue names.
///
/// Implemented for `web::Json<T>` (the payload is `T`), and for `Result`, `Option`,
/// `(R, StatusCode)` and `Either` around such types (an `Either`'s sides must carry the same
/// payload type). A responder type of your own implements it next to [`EventPayload`]:
///
/// ```
/// use sse_core::contract::TypedPayload;
///
/// #[derive(serde::Serialize)]
/// struct User { id: u64 }
///
/// struct Created(User);
///
/// impl TypedPayload for Created {
///     type Payload = User;
///     fn with_payload<F: FnOnce(&User)>(&self, f: F) {
///         f(&self.0);
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`payload = ...` cannot find one payload type in a handler that returns `{Self}`",
    label = "`payload = ...` needs one payload type in this return type",
    note = "return `web::Json<T>`, possibly inside `Result<_, E>`, `Option<_>`, `(_, StatusCode)`, or `Either<_, _>` with the same `T` on both sides",
    note = "for a responder type of your own, implement `sse_core::contract::TypedPayload` for it"
)]
pub trait TypedPayload {
    /// The type of the payload: the `T` of `web::Json<T>`.
    type Payload: ?Sized;

    /// Calls `f` with the payload, or returns without calling it when there is nothing to
    /// publish (an error, `None`, a non-success status).
    fn with_payload<F: FnOnce(&Self::Payload)>(&self, f: F);
}

impl<T> TypedPayload for Json<T> {
    type Payload = T;
    fn with_payload<F: FnOnce(&T)>(&self, f: F) {
        f(&self.0);
    }
}

impl<T: TypedPayload, E> TypedPayload for Result<T, E> {
    type Payload = T::Payload;
    fn with_payload<F: FnOnce(&T::Payload)>(&self, f: F) {
        if let Ok(value) = self {
            value.with_payload(f);
        }
    }
}

impl<T: TypedPayload> TypedPayload for Option<T> {
    type Payload = T::Payload;
    fn with_payload<F: FnOnce(&T::Payload)>(&self, f: F) {
        if let Some(value) = self {
            value.with_payload(f);
        }
    }
}

/// Only when the status is a success (2xx).
impl<T: TypedPayload> TypedPayload for (T, StatusCode) {
    type Payload = T::Payload;
    fn with_payload<F: FnOnce(&T::Payload)>(&self, f: F) {
        if self.1.is_success() {
            self.0.with_payload(f);
        }
    }
}

impl<L: TypedPayload, R: TypedPayload<Payload = L::Payload>> TypedPayload for Either<L, R> {
    type Payload = L::Payload;
    fn with_payload<F: FnOnce(&L::Payload)>(&self, f: F) {
        match self {
            Either::Left(l) => l.with_payload(f),
            Either::Right(r) => r.with_payload(f),
        }
    }
}
