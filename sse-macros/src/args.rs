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
    /// `topic = "users/{id}"`: a template filled from the payload; default the event name.
    pub(crate) topic: Option<LitStr>,
    /// `private`: only for subscribers authorized for the topic.
    pub(crate) private: bool,
    /// `to_others`: not echoed to the stream of the client that sent the request.
    pub(crate) to_others: bool,
}

mod kw {
    syn::custom_keyword!(topic);
    syn::custom_keyword!(private);
    syn::custom_keyword!(to_others);
}

const EXAMPLE: &str = "`#[emit_event(\"user_updated\")]`";
const VALID: &str = "`#[emit_event]` takes the event name and, optionally, \
                     `topic = \"users/{id}\"`, `private`, `to_others` and \
                     `crate = \"path::to::sse_core\"`";

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let mut name: Option<LitStr> = None;
        let mut krate: Option<syn::Path> = None;
        let mut topic: Option<LitStr> = None;
        let mut private = false;
        let mut to_others = false;
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
            } else if input.peek(kw::topic) && input.peek2(Token![=]) {
                let key: kw::topic = input.parse()?;
                input.parse::<Token![=]>()?;
                let value: syn::Expr = input.parse()?;
                match value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(lit),
                        ..
                    }) => {
                        if topic.is_some() {
                            errors.push(syn::Error::new(
                                key.span,
                                "the argument `topic` is given twice: an event has one topic \
                                 template (publish from code with `publish_to` for several)",
                            ));
                        } else {
                            if let Err(err) = check_template(&lit) {
                                errors.push(err);
                            }
                            topic = Some(lit);
                        }
                    }
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "`topic` takes a string template, like `topic = \"users/{id}\"`",
                    )),
                }
            } else if input.peek(kw::private) || input.peek(kw::to_others) {
                let key: syn::Ident = input.parse()?;
                let flag = if key == "private" {
                    &mut private
                } else {
                    &mut to_others
                };
                if input.peek(Token![=]) {
                    input.parse::<Token![=]>()?;
                    let value: syn::Expr = input.parse()?;
                    errors.push(syn::Error::new_spanned(
                        value,
                        format!("`{key}` takes no value: write `{key}` alone"),
                    ));
                } else if *flag {
                    errors.push(syn::Error::new(
                        key.span(),
                        format!("the argument `{key}` is given twice"),
                    ));
                }
                *flag = true;
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
            Some(name) => Ok(Args {
                name,
                krate,
                topic,
                private,
                to_others,
            }),
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

/// Checks a topic template: non-empty, no control characters, and `{field}` parts naming a
/// (possibly nested, `a.b`) field with a Rust identifier or index at each step.
fn check_template(lit: &LitStr) -> syn::Result<()> {
    let template = lit.value();
    let problem = if template.is_empty() {
        Some("the topic template must not be empty".to_owned())
    } else if template.chars().any(char::is_control) {
        Some("the topic template must not contain control characters".to_owned())
    } else {
        template_problem(&template)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(syn::Error::new(lit.span(), problem)),
    }
}

fn template_problem(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        if rest.as_bytes()[i] == b'}' {
            return Some("unmatched `}` in the topic template".to_owned());
        }
        let after = &rest[i + 1..];
        let Some(close) = after.find('}') else {
            return Some(
                "unclosed `{` in the topic template: write `{field}` to insert a payload field"
                    .to_owned(),
            );
        };
        let field = &after[..close];
        let valid = !field.is_empty()
            && field.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
        if !valid {
            return Some(format!(
                "`{{{field}}}` does not name a payload field: write `{{id}}`, or `{{user.id}}` \
                 for a nested one"
            ));
        }
        rest = &after[close + 1..];
    }
    None
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
