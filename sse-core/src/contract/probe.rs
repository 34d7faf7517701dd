//! How generated code learns what it can of a payload type without requiring anything of it:
//! its name always, its JSON Schema when it implements `JsonSchema` (feature `schema`).
//!
//! Autoref specialization: the generated code calls `(&&&probe).payload_info()` on a concrete
//! type, and method resolution picks the most specific impl whose bounds hold: the methods
//! take `self`, so the impl for the most `&`s matches first, and the next one, for one `&`
//! less, only when its bounds fail. A payload without `JsonSchema` is catalogued without a schema instead of
//! failing to compile, so turning the feature on never breaks a handler.

// Not public API (reached through `__private`), documented above as a whole.
#![allow(missing_docs)]

use std::marker::PhantomData;

use super::catalogue::PayloadInfo;
use crate::emit::TypedPayload;

/// A payload type `T`, for [`ByType`] and [`BySchema`].
pub struct Probe<T: ?Sized>(PhantomData<fn() -> PhantomData<T>>);

impl<T: ?Sized> Probe<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// A handler's return type `R`, whose payload is `R::Payload` when it is a [`TypedPayload`].
pub struct ReturnProbe<R: ?Sized>(PhantomData<fn() -> PhantomData<R>>);

impl<R: ?Sized> ReturnProbe<R> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// The probe of what `project` returns: `payload = path` on a return type `O`.
pub fn projected<O, F, P>(_project: &F) -> Probe<P>
where
    O: TypedPayload + ?Sized,
    F: FnOnce(&O::Payload) -> P,
{
    Probe::new()
}

/// The payload type is known, not its schema.
pub trait ByType {
    fn payload_info(self) -> PayloadInfo;
}

impl<T: ?Sized> ByType for &Probe<T> {
    fn payload_info(self) -> PayloadInfo {
        PayloadInfo {
            type_path: Some(std::any::type_name::<T>()),
            schema: None,
        }
    }
}

/// The payload type implements `JsonSchema` (only with feature `schema`).
pub trait BySchema {
    fn payload_info(self) -> PayloadInfo;
}

#[cfg(feature = "schema")]
impl<T: ?Sized + schemars::JsonSchema> BySchema for &&Probe<T> {
    fn payload_info(self) -> PayloadInfo {
        PayloadInfo {
            type_path: Some(std::any::type_name::<T>()),
            schema: Some(schema_of::<T>()),
        }
    }
}

/// A return type with no one payload type (a custom `EventPayload`, an `Either` of two).
pub trait ByReturnUnknown {
    fn payload_info(self) -> PayloadInfo;
}

impl<R: ?Sized> ByReturnUnknown for &ReturnProbe<R> {
    fn payload_info(self) -> PayloadInfo {
        PayloadInfo::default()
    }
}

/// A [`TypedPayload`] return type.
pub trait ByReturnType {
    fn payload_info(self) -> PayloadInfo;
}

impl<R: ?Sized + TypedPayload> ByReturnType for &&ReturnProbe<R> {
    fn payload_info(self) -> PayloadInfo {
        (&Probe::<R::Payload>::new()).payload_info()
    }
}

/// A [`TypedPayload`] return type whose payload implements `JsonSchema`.
pub trait ByReturnSchema {
    fn payload_info(self) -> PayloadInfo;
}

#[cfg(feature = "schema")]
impl<R> ByReturnSchema for &&&ReturnProbe<R>
where
    R: ?Sized + TypedPayload,
    R::Payload: schemars::JsonSchema,
{
    fn payload_info(self) -> PayloadInfo {
        (&&Probe::<R::Payload>::new()).payload_info()
    }
}

/// The schema of what `T` serializes to, draft 7, with its definitions under
/// `components.schemas` where an AsyncAPI document keeps them.
#[cfg(feature = "schema")]
fn schema_of<T: ?Sized + schemars::JsonSchema>() -> serde_json::Value {
    let settings = schemars::generate::SchemaSettings::draft07().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
        s.contract = schemars::generate::Contract::Serialize;
    });
    settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}
