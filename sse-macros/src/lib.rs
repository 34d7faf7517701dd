//! The `#[emit_event]` attribute macro.
//!
//! This crate is an implementation detail of [`sse-core`](https://docs.rs/sse-core), which
//! re-exports the macro with its documentation: depend on `sse-core` and write
//! `use sse_core::emit_event;`.

mod args;
mod expand;
// A symlink to `sse-core/src/wire/rules.rs`: one copy of the rules for both crates.
mod rules;

use proc_macro::TokenStream;

/// Publishes the handler's successful result as a named SSE event. See
/// `sse_core::emit_event` for the documentation.
#[proc_macro_attribute]
pub fn emit_event(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::emit_event(args.into(), item.into()).into()
}
