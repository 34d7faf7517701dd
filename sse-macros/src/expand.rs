//! Validation of the annotated item and generation of the wrapper.

use proc_macro2::{TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, Item, ItemFn, ReturnType};

use crate::args::{Args, Errors};

pub(crate) fn emit_event(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args, item.clone()) {
        Ok(tokens) => tokens,
        // Keep the user's item so the rest of the crate still type-checks.
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#item #err)
        }
    }
}

fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let mut events = Vec::new();
    let mut krate = None;
    match syn::parse2::<Args>(args) {
        Ok(mut args) => {
            krate = args.krate.take();
            events.push(args);
        }
        Err(err) => errors.push(err),
    }
    let mut func = match syn::parse2::<Item>(item) {
        Ok(Item::Fn(func)) => func,
        Err(err) => return errors.fail(err),
        Ok(other) => {
            return errors.fail(syn::Error::new(
                item_keyword_span(&other),
                "`#[emit_event]` can only be applied to an `async fn` request handler",
            ));
        }
    };
    if func.sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            func.sig.fn_token.span,
            "`#[emit_event]` handlers must be `async fn`s: the event is published when the \
             handler's future completes",
        ));
    }
    if let ReturnType::Type(_, ty) = &func.sig.output {
        if mentions_impl(ty.to_token_stream()) {
            errors.push(syn::Error::new_spanned(
                ty,
                "`#[emit_event]` cannot read an event payload from an `impl Trait` return \
                 type: return a concrete type such as `web::Json<T>` or \
                 `Result<web::Json<T>, E>` with `T: serde::Serialize`",
            ));
        }
    }
    // Later `#[emit_event]` attributes on the same fn are taken here, so that all events are
    // published in the order written.
    for mut args in take_sibling_attrs(&mut func.attrs, krate.as_ref(), &mut errors) {
        krate = krate.or(args.krate.take());
        events.push(args);
    }
    // `transactional` on any of the fn's attributes makes the whole handler transactional:
    // its events are written together, in its one transaction.
    let tx = match events.iter().find_map(|e| e.transactional) {
        Some(at) => match tx_param(&func.sig, at) {
            Ok(ident) => Some(ident),
            Err(err) => {
                errors.push(err);
                None
            }
        },
        None => None,
    };
    errors.finish()?;
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::sse_core));
    Ok(generate(func, &events, &krate, tx.as_ref()))
}

/// The parameter a `transactional` handler's events are written in: the one whose type is
/// `Tx` (`sse_core::sql::Tx`, however imported), bound to a name.
fn tx_param(sig: &syn::Signature, at: proc_macro2::Span) -> syn::Result<syn::Ident> {
    let is_tx = |ty: &syn::Type| match ty {
        syn::Type::Path(path) => path.path.segments.last().is_some_and(|s| s.ident == "Tx"),
        _ => false,
    };
    let param = sig.inputs.iter().find_map(|input| match input {
        syn::FnArg::Typed(param) if is_tx(&param.ty) => Some(param),
        _ => None,
    });
    let Some(param) = param else {
        return Err(syn::Error::new(
            at,
            "`transactional` writes the events in the handler's transaction, and this handler \
             has none: add a parameter `tx: sse_core::sql::Tx` and write the change through it",
        ));
    };
    match &*param.pat {
        syn::Pat::Ident(pat) if pat.subpat.is_none() => Ok(pat.ident.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            "bind the transaction to a name, like `tx: Tx`: the events are written in it \
             after the handler's body",
        )),
    }
}

fn generate(
    func: ItemFn,
    events: &[Args],
    krate: &syn::Path,
    tx: Option<&syn::Ident>,
) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    // syn puts a body's inner attributes (`#![allow(..)]`) in `attrs` too; before `fn` they
    // would be an error, so they go back to the start of the body.
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Outer));
    // The annotation lets `?` in the body infer its error type, as it would in the fn.
    let (ret, span) = match &sig.output {
        ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
        ReturnType::Default => (quote!(()), sig.ident.span()),
    };
    // Items in the body cannot name the fn's generics or `Self`: such a handler is catalogued
    // without its payload type.
    let nameable = sig.generics.params.is_empty()
        && sig.receiver().is_none()
        && !mentions_ident(ret.clone(), "Self");
    let gen = Gen {
        krate,
        ret: &ret,
        ret_span: span,
        nameable,
        handler: &sig.ident,
    };
    let mut items = Vec::new();
    let mut calls = Vec::new();
    let mut plain = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let spec = gen.spec(event);
        items.push(gen.register(i, event));
        match &event.payload {
            None => plain.push(spec),
            Some(path) => {
                calls.extend(gen.emit_plain(std::mem::take(&mut plain)));
                items.extend(gen.projection_fn(i, path));
                calls.push(gen.emit_projected(i, path, &spec));
            }
        }
    }
    calls.extend(gen.emit_plain(plain));
    if let Some(tx) = tx {
        // Spanned on the return type: a type that cannot carry the commit's failure is
        // reported there.
        let commit = quote_spanned! {span=>
            #krate::__private::commit(__sse_tx, __sse_events, __sse_output).await
        };
        return quote! {
            #(#outer)*
            #vis #sig {
                #(#inner)*
                #(#items)*
                let __sse_tx = #krate::__private::tx_handle(&#tx);
                let __sse_output: #ret = async move #block.await;
                let __sse_events = #krate::__private::collect(|| { #(#calls)* });
                #commit
            }
        };
    }
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            #(#items)*
            let __sse_output: #ret = async move #block.await;
            #(#calls)*
            __sse_output
        }
    }
}

/// What the generated code of one handler shares.
struct Gen<'a> {
    krate: &'a syn::Path,
    /// The return type.
    ret: &'a TokenStream,
    ret_span: proc_macro2::Span,
    /// Whether items in the body can name the return type.
    nameable: bool,
    handler: &'a syn::Ident,
}

impl Gen<'_> {
    fn spec(&self, event: &Args) -> TokenStream {
        let krate = self.krate;
        let Args {
            name,
            topic,
            private,
            to_others,
            ..
        } = event;
        let topic = match topic {
            Some(topic) => quote!(::core::option::Option::Some(#topic)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #krate::__private::EventSpec {
                name: #name,
                topic: #topic,
                private: #private,
                to_others: #to_others,
            }
        }
    }

    /// Events without `payload`: the return value's payload, serialized once for all of them.
    fn emit_plain(&self, specs: Vec<TokenStream>) -> Option<TokenStream> {
        if specs.is_empty() {
            return None;
        }
        let krate = self.krate;
        // Spanned on the return type, so a type without a payload is reported there.
        Some(quote_spanned! {self.ret_span=>
            #krate::__private::emit(&[#(#specs),*], &__sse_output);
        })
    }

    /// `payload = path`: spanned on `path`, so a wrong signature is reported there.
    fn emit_projected(&self, i: usize, path: &syn::Path, spec: &TokenStream) -> TokenStream {
        let krate = &respan(self.krate, path.span());
        if self.nameable {
            let event_fn = format_ident!("__sse_event_{}", i);
            quote_spanned! {path.span()=>
                #event_fn(::core::option::Option::Some(&__sse_output), &[#spec]);
            }
        } else {
            quote_spanned! {path.span()=>
                #krate::__private::emit_with(&[#spec], &__sse_output, |__sse_t| #path(__sse_t));
            }
        }
    }

    /// One fn that both publishes the projection and tells its type to the catalogue, so that
    /// `path` is named once and a mistake in it reported once.
    fn projection_fn(&self, i: usize, path: &syn::Path) -> Option<TokenStream> {
        if !self.nameable {
            return None;
        }
        let Self { krate, ret, .. } = self;
        let event_fn = format_ident!("__sse_event_{}", i);
        // Every call that names `path` is spanned on it, its crate path included: a call's
        // span runs from its first token, and a mistake in `path` is reported there.
        let at_path = respan(krate, path.span());
        let at_ret = respan(krate, self.ret_span);
        let payload_of = quote_spanned! {self.ret_span=>
            <#ret as #at_ret::__private::TypedPayload>::Payload
        };
        let project = quote_spanned! {path.span()=>
            |__sse_t: &#payload_of| #path(__sse_t)
        };
        let emit = quote_spanned! {path.span()=>
            #at_path::__private::emit_with(events, output, __sse_project)
        };
        let probe = quote_spanned! {self.ret_span=>
            #at_ret::__private::projected::<#ret, _, _>(&__sse_project)
        };
        Some(quote! {
            fn #event_fn(
                output: ::core::option::Option<&#ret>,
                events: &[#krate::__private::EventSpec<'_>],
            ) -> #krate::__private::PayloadInfo {
                #[allow(unused_imports)]
                use #krate::__private::{BySchema as _, ByType as _};
                let __sse_project = #project;
                match output {
                    ::core::option::Option::Some(output) => {
                        #emit;
                        ::core::default::Default::default()
                    }
                    ::core::option::Option::None => {
                        let probe = #probe;
                        (&&probe).payload_info()
                    }
                }
            }
        })
    }

    /// The event's entry in the catalogue, registered at link time.
    fn register(&self, i: usize, event: &Args) -> TokenStream {
        let Self {
            krate,
            ret,
            handler,
            ..
        } = self;
        let payload_fn = format_ident!("__sse_payload_{}", i);
        let body = if !self.nameable {
            quote!(::core::default::Default::default())
        } else if event.payload.is_some() {
            let event_fn = format_ident!("__sse_event_{}", i);
            quote!(#event_fn(::core::option::Option::None, &[]))
        } else {
            quote! {
                #[allow(unused_imports)]
                use #krate::__private::{ByReturnSchema as _, ByReturnType as _, ByReturnUnknown as _};
                (&&&#krate::__private::ReturnProbe::<#ret>::new()).payload_info()
            }
        };
        let Args {
            name,
            topic,
            private,
            to_others,
            ..
        } = event;
        let topic = match topic {
            Some(topic) => quote!(::core::option::Option::Some(#topic)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            fn #payload_fn() -> #krate::__private::PayloadInfo {
                #body
            }
            #krate::__register_event! {
                name: #name,
                topic: #topic,
                private: #private,
                to_others: #to_others,
                origin: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#handler)),
                file: ::core::file!(),
                line: ::core::line!(),
                column: ::core::column!(),
                payload: #payload_fn,
            }
        }
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: impl ToTokens, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_token_stream()
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

fn take_sibling_attrs(
    attrs: &mut Vec<Attribute>,
    krate: Option<&syn::Path>,
    errors: &mut Errors,
) -> Vec<Args> {
    let mut found = Vec::new();
    attrs.retain(|attr| {
        let is_ours = is_our_attribute(attr, krate);
        if is_ours {
            let parsed = match &attr.meta {
                syn::Meta::Path(_) => syn::parse2::<Args>(TokenStream::new()),
                _ => attr.parse_args::<Args>(),
            };
            match parsed {
                Ok(args) => found.push(args),
                Err(err) => errors.push(err),
            }
        }
        !is_ours
    });
    found
}

/// Whether `attr` is `#[emit_event]` by one of the paths it is known by: `emit_event`,
/// `sse_core::emit_event`, `::sse_core::emit_event`, or `<krate>::emit_event` when the
/// expanded attribute gave `crate = "<krate>"`. Another crate's `emit_event` is left alone.
fn is_our_attribute(attr: &Attribute, krate: Option<&syn::Path>) -> bool {
    let path = attr.path();
    let idents: Vec<&syn::Ident> = path.segments.iter().map(|s| &s.ident).collect();
    let Some((last, prefix)) = idents.split_last() else {
        return false;
    };
    if !matches!(attr.style, AttrStyle::Outer) || *last != "emit_event" {
        return false;
    }
    let same = |krate: &syn::Path| {
        krate.segments.len() == prefix.len()
            && krate
                .segments
                .iter()
                .zip(prefix)
                .all(|(a, b)| a.ident == **b)
    };
    match prefix {
        // `::emit_event` would be a crate named `emit_event`.
        [] => path.leading_colon.is_none(),
        [only] if *only == "sse_core" => true,
        _ => krate.is_some_and(same),
    }
}

fn mentions_impl(tokens: TokenStream) -> bool {
    mentions_ident(tokens, "impl")
}

fn mentions_ident(tokens: TokenStream, ident: &str) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == ident,
        TokenTree::Group(g) => mentions_ident(g.stream(), ident),
        _ => false,
    })
}

fn item_keyword_span(item: &Item) -> proc_macro2::Span {
    match item {
        Item::Struct(i) => i.struct_token.span,
        Item::Enum(i) => i.enum_token.span,
        Item::Union(i) => i.union_token.span,
        Item::Impl(i) => i.impl_token.span,
        Item::Trait(i) => i.trait_token.span,
        Item::Mod(i) => i.mod_token.span,
        Item::Const(i) => i.const_token.span,
        Item::Static(i) => i.static_token.span,
        Item::Type(i) => i.type_token.span,
        Item::Use(i) => i.use_token.span,
        other => other.span(),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::{emit_event, is_our_attribute};

    fn attribute(tokens: proc_macro2::TokenStream) -> syn::Attribute {
        syn::parse_quote!(#tokens)
    }

    #[test]
    fn only_our_own_attribute_paths_are_taken() {
        let krate: syn::Path = syn::parse_quote!(my_app::events);
        for ours in [
            quote!(#[emit_event("a")]),
            quote!(#[emit_event]),
            quote!(#[sse_core::emit_event("a")]),
            quote!(#[::sse_core::emit_event("a")]),
            quote!(#[my_app::events::emit_event("a")]),
            quote!(#[::my_app::events::emit_event("a")]),
        ] {
            assert!(
                is_our_attribute(&attribute(ours.clone()), Some(&krate)),
                "{ours}"
            );
        }
        for foreign in [
            quote!(#[other_crate::emit_event("a")]),
            quote!(#[rustfmt::emit_event]),
            quote!(#[::emit_event("a")]),
            quote!(#[events::emit_event("a")]),
            quote!(#[my_app::events::other::emit_event("a")]),
            quote!(#[sse_core::emit_events("a")]),
            quote!(#[sse_core::emit_event::inner]),
        ] {
            assert!(
                !is_our_attribute(&attribute(foreign.clone()), Some(&krate)),
                "{foreign}"
            );
        }
        let renamed = attribute(quote!(#[my_app::events::emit_event("a")]));
        assert!(!is_our_attribute(&renamed, None));
    }

    #[test]
    fn argument_errors_are_kept_when_the_item_is_unreadable() {
        // rustc only hands an attribute macro an item it could parse, so this happens where
        // syn lags behind rustc's grammar; a plain token stream stands in for such an item.
        let out = emit_event(quote!("", colour = "red"), quote!(this is not an item)).to_string();
        assert!(out.contains("the event name must not be empty"), "{out}");
        assert!(out.contains("unknown argument `colour`"), "{out}");
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        assert!(out.starts_with("this is not an item"), "{out}");
    }
}
