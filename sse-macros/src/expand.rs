//! Validation of the annotated item and generation of the wrapper.

use proc_macro2::{TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
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
    errors.finish()?;
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::sse_core));
    Ok(generate(func, &events, &krate))
}

fn generate(func: ItemFn, events: &[Args], krate: &syn::Path) -> TokenStream {
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
    let (annotation, span) = match &sig.output {
        ReturnType::Type(_, ty) => (quote!(: #ty), ty.span()),
        ReturnType::Default => (quote!(: ()), sig.ident.span()),
    };
    // Spanned on the return type, so a type without a payload is reported there.
    let specs = events.iter().map(|event| {
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
    });
    let emit = quote_spanned! {span=>
        #krate::__private::emit(&[#(#specs),*], &__sse_output);
    };
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            let __sse_output #annotation = async move #block.await;
            #emit
            __sse_output
        }
    }
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
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Group(g) => mentions_impl(g.stream()),
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
