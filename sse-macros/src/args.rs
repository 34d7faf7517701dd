//! Parsing of `#[emit_event(...)]` arguments.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token};

/// The arguments of one `#[emit_event(...)]` attribute.
pub(crate) struct Args {
    /// The event name, already checked to be a valid SSE event name.
    pub(crate) name: LitStr,
    /// `crate = "path"`: where `sse_core` is, for users who renamed or re-export it.
    pub(crate) krate: Option<syn::Path>,
}

const EXAMPLE: &str = "`#[emit_event(\"user_updated\")]`";
const VALID: &str = "`#[emit_event]` takes the event name and, optionally, \
                     `crate = \"path::to::sse_core\"`";

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let mut name: Option<LitStr> = None;
        let mut krate: Option<syn::Path> = None;
        let mut first = true;
        while !input.is_empty() {
            if !first {
                input.parse::<Token![,]>()?;
                if input.is_empty() {
                    break;
                }
            }
            first = false;
            if input.peek(LitStr) {
                let lit: LitStr = input.parse()?;
                if name.is_some() {
                    errors.push(syn::Error::new(
                        lit.span(),
                        "the event name is given twice: one `#[emit_event(\"...\")]` publishes \
                         one event; to publish several, write one attribute per event",
                    ));
                } else {
                    if let Err(err) = check_name(&lit) {
                        errors.push(err);
                    }
                    name = Some(lit);
                }
            } else if input.peek(Token![crate]) && input.peek2(Token![=]) {
                let key: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                match lit.parse::<syn::Path>() {
                    Err(_) => errors.push(syn::Error::new(
                        lit.span(),
                        "`crate` takes the path of `sse_core` as a string, like \
                         `crate = \"my_app::sse_core\"`",
                    )),
                    Ok(_) if krate.is_some() => errors.push(syn::Error::new(
                        key.span,
                        "the argument `crate` is given twice",
                    )),
                    Ok(path) => krate = Some(path),
                }
            } else if input.peek(syn::Ident) && input.peek2(Token![=]) {
                let key: syn::Ident = input.parse()?;
                errors.push(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{key}`: {VALID}"),
                ));
                // Skip the value, so that later arguments are still checked.
                input.parse::<Token![=]>()?;
                input.parse::<syn::Expr>()?;
            } else {
                let found: syn::Expr = input.parse()?;
                let hint = if matches!(found, syn::Expr::Path(_)) {
                    " (a constant cannot be used: attribute arguments are read before \
                     constants are evaluated)"
                } else {
                    ""
                };
                errors.push(syn::Error::new_spanned(
                    found,
                    format!("the event name must be a string literal, like {EXAMPLE}{hint}"),
                ));
            }
        }
        if name.is_none() && errors.is_empty() {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!("`#[emit_event]` needs the name of the event to publish, like {EXAMPLE}"),
            ));
        }
        errors.finish()?;
        match name {
            Some(name) => Ok(Args { name, krate }),
            None => Err(syn::Error::new(Span::call_site(), "missing event name")),
        }
    }
}

/// The rules of `sse_core::validate_event_name`, at compile time.
fn check_name(lit: &LitStr) -> syn::Result<()> {
    let name = lit.value();
    let problem = if name.is_empty() {
        "the event name must not be empty"
    } else if name.contains(['\r', '\n']) {
        "the event name must not contain a line break: it would end the `event:` line of the \
         SSE frame"
    } else if name.contains('\0') {
        "the event name must not contain a NUL character"
    } else {
        return Ok(());
    };
    Err(syn::Error::new(lit.span(), problem))
}

/// Collects independent errors to report them together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    /// Fails with the collected errors and `err`.
    pub(crate) fn fail<T>(self, err: syn::Error) -> syn::Result<T> {
        match self.0 {
            Some(mut all) => {
                all.combine(err);
                Err(all)
            }
            None => Err(err),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
