//! Parsing of `#[emit_event(...)]` arguments.

use proc_macro2::Span;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

use crate::rules;

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
    /// `payload = path::to::fn`: publish `fn(&T)` instead of `T`.
    pub(crate) payload: Option<syn::Path>,
    /// `transactional`: written in the handler's `Tx` and committed with its change; where
    /// the word was written.
    pub(crate) transactional: Option<Span>,
}

mod kw {
    syn::custom_keyword!(payload);
    syn::custom_keyword!(topic);
    syn::custom_keyword!(private);
    syn::custom_keyword!(to_others);
    syn::custom_keyword!(transactional);
}

const EXAMPLE: &str = "`#[emit_event(\"user_updated\")]`";
const VALID: &str = "`#[emit_event]` takes the event name and, optionally, \
                     `topic = \"users/{id}\"`, `payload = UserPublic::from`, `private`, \
                     `to_others`, `transactional` and `crate = \"path::to::sse_core\"`";

/// The arguments other than the event name: what a misspelt word is compared with.
const ARGUMENTS: [&str; 6] = [
    "topic",
    "payload",
    "private",
    "to_others",
    "transactional",
    "crate",
];

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut found = Found::default();
        let mut errors = Errors::default();
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
                parse_name(input, &mut found, &mut errors)?;
            } else if input.peek(Token![crate]) && input.peek2(Token![=]) {
                parse_crate(input, &mut found, &mut errors)?;
            } else if input.peek(kw::topic) && input.peek2(Token![=]) {
                parse_topic(input, &mut found, &mut errors)?;
            } else if input.peek(kw::payload) && input.peek2(Token![=]) {
                parse_payload(input, &mut found, &mut errors)?;
            } else if input.peek(kw::private) {
                found.private = parse_flag::<kw::private>(input, found.private, &mut errors)?;
            } else if input.peek(kw::to_others) {
                found.to_others = parse_flag::<kw::to_others>(input, found.to_others, &mut errors)?;
            } else if input.peek(kw::transactional) {
                let span = input.span();
                let already = found.transactional.is_some();
                parse_flag::<kw::transactional>(input, already, &mut errors)?;
                found.transactional.get_or_insert(span);
            } else if input.peek(Ident::peek_any) && input.peek2(Token![=]) {
                parse_unknown(input, &mut errors)?;
            } else if is_bare_word(input) {
                parse_bare_word(input, &mut found, &mut errors)?;
            } else {
                parse_not_a_name(input, &mut errors)?;
            }
        }
        found.finish(errors)
    }
}

/// The arguments read so far.
#[derive(Default)]
struct Found {
    name: Option<LitStr>,
    krate: Option<syn::Path>,
    topic: Option<LitStr>,
    private: bool,
    to_others: bool,
    payload: Option<syn::Path>,
    transactional: Option<Span>,
    /// Words alone that are no argument and too far from one for a suggestion: judged at the
    /// end, when it is known whether the event name was given.
    unknown_words: Vec<Ident>,
}

impl Found {
    fn finish(mut self, mut errors: Errors) -> syn::Result<Args> {
        for (i, word) in std::mem::take(&mut self.unknown_words)
            .into_iter()
            .enumerate()
        {
            if i == 0 && self.name.is_none() {
                // `#[emit_event(user_updated)]`: most likely the name without its quotes.
                errors.push(not_a_literal_name(&word, true));
            } else {
                errors.push(unknown_argument(&word, None));
            }
        }
        // Without a name because of an error, that error says enough.
        errors.finish()?;
        let Some(name) = self.name else {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("`#[emit_event]` needs the name of the event to publish, like {EXAMPLE}"),
            ));
        };
        Ok(Args {
            name,
            krate: self.krate,
            topic: self.topic,
            private: self.private,
            to_others: self.to_others,
            payload: self.payload,
            transactional: self.transactional,
        })
    }
}

/// `"user_updated"`: the event name.
fn parse_name(input: ParseStream<'_>, found: &mut Found, errors: &mut Errors) -> syn::Result<()> {
    let lit: LitStr = input.parse()?;
    if found.name.is_some() {
        errors.push(syn::Error::new(
            lit.span(),
            "the event name is given twice: one `#[emit_event(\"...\")]` publishes one event; \
             to publish several, write one attribute per event",
        ));
        return Ok(());
    }
    if let Some(problem) = rules::event_name_problem(&lit.value()) {
        errors.push(syn::Error::new(lit.span(), problem));
    }
    found.name = Some(lit);
    Ok(())
}

/// `crate = "my_app::sse_core"`.
fn parse_crate(input: ParseStream<'_>, found: &mut Found, errors: &mut Errors) -> syn::Result<()> {
    let key: Token![crate] = input.parse()?;
    input.parse::<Token![=]>()?;
    let lit: LitStr = input.parse()?;
    match lit.parse::<syn::Path>() {
        Err(_) => errors.push(syn::Error::new(
            lit.span(),
            "`crate` takes the path of `sse_core` as a string, like \
             `crate = \"my_app::sse_core\"`",
        )),
        Ok(_) if found.krate.is_some() => errors.push(syn::Error::new(
            key.span,
            "the argument `crate` is given twice",
        )),
        Ok(path) => found.krate = Some(path),
    }
    Ok(())
}

/// `topic = "users/{id}"`.
fn parse_topic(input: ParseStream<'_>, found: &mut Found, errors: &mut Errors) -> syn::Result<()> {
    let key: kw::topic = input.parse()?;
    input.parse::<Token![=]>()?;
    let lit = match input.parse::<syn::Expr>()? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => lit,
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                "`topic` takes a string template, like `topic = \"users/{id}\"`",
            ));
            return Ok(());
        }
    };
    if found.topic.is_some() {
        errors.push(syn::Error::new(
            key.span,
            "the argument `topic` is given twice: an event has one topic template (publish \
             from code with `publish_to` for several)",
        ));
        return Ok(());
    }
    if let Err(err) = check_template(&lit) {
        errors.push(err);
    }
    found.topic = Some(lit);
    Ok(())
}

/// `payload = UserPublic::from`: the path of a function from `&T` to what is published.
fn parse_payload(
    input: ParseStream<'_>,
    found: &mut Found,
    errors: &mut Errors,
) -> syn::Result<()> {
    let key: kw::payload = input.parse()?;
    input.parse::<Token![=]>()?;
    let path = match input.parse::<syn::Expr>()? {
        syn::Expr::Path(syn::ExprPath {
            qself: None, path, ..
        }) => path,
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                "`payload` takes the path of a function from `&T` (the handler's payload) to \
                 what is published, like `payload = UserPublic::from`",
            ));
            return Ok(());
        }
    };
    if found.payload.is_some() {
        errors.push(syn::Error::new(
            key.span,
            "the argument `payload` is given twice: an event has one payload",
        ));
        return Ok(());
    }
    found.payload = Some(path);
    Ok(())
}

/// `private` or `to_others`: a flag, which takes no value. Returns the flag's new value.
fn parse_flag<K: Parse + ToTokens>(
    input: ParseStream<'_>,
    already: bool,
    errors: &mut Errors,
) -> syn::Result<bool> {
    let key: K = input.parse()?;
    let name = key.to_token_stream();
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        let value: syn::Expr = input.parse()?;
        errors.push(syn::Error::new_spanned(
            value,
            format!("`{name}` takes no value: write `{name}` alone"),
        ));
    } else if already {
        errors.push(syn::Error::new_spanned(
            key,
            format!("the argument `{name}` is given twice"),
        ));
    }
    Ok(true)
}

/// `name = value` with a name we do not know: reported, and its value skipped so that later
/// arguments are still checked.
fn parse_unknown(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
    let key = Ident::parse_any(input)?;
    errors.push(unknown_argument(&key, suggestion(&key.to_string())));
    input.parse::<Token![=]>()?;
    input.parse::<syn::Expr>()?;
    Ok(())
}

/// Whether the next argument is one word alone (`privat`, `topic`), followed by `,` or the end.
fn is_bare_word(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any).is_ok() && (fork.is_empty() || fork.peek(Token![,]))
}

/// A word alone that is no flag: an argument that needs a value, a misspelt argument, or
/// (decided in [`Found::finish`]) an unknown one or the event name without quotes.
fn parse_bare_word(
    input: ParseStream<'_>,
    found: &mut Found,
    errors: &mut Errors,
) -> syn::Result<()> {
    let word = Ident::parse_any(input)?;
    let text = word.to_string();
    let example = match text.as_str() {
        "topic" => Some("topic = \"users/{id}\""),
        "payload" => Some("payload = UserPublic::from"),
        "crate" => Some("crate = \"my_app::sse_core\""),
        _ => None,
    };
    if let Some(example) = example {
        errors.push(syn::Error::new(
            word.span(),
            format!("`{text}` takes a value, like `{example}`"),
        ));
    } else if let Some(suggestion) = suggestion(&text) {
        errors.push(unknown_argument(&word, Some(suggestion)));
    } else {
        found.unknown_words.push(word);
    }
    Ok(())
}

/// Anything else where the event name was expected.
fn parse_not_a_name(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
    let found: syn::Expr = input.parse()?;
    let is_path = matches!(found, syn::Expr::Path(_));
    errors.push(not_a_literal_name(&found, is_path));
    Ok(())
}

fn not_a_literal_name(found: &impl ToTokens, maybe_constant: bool) -> syn::Error {
    let hint = if maybe_constant {
        " (a constant cannot be used: attribute arguments are read before constants are \
         evaluated)"
    } else {
        ""
    };
    syn::Error::new_spanned(
        found,
        format!("the event name must be a string literal, like {EXAMPLE}{hint}"),
    )
}

/// `unknown argument`, with the argument meant if one is close, and the valid ones.
fn unknown_argument(word: &Ident, suggestion: Option<&str>) -> syn::Error {
    let meant = suggestion.map_or(String::new(), |s| format!(" did you mean `{s}`?"));
    syn::Error::new(
        word.span(),
        format!("unknown argument `{word}`:{meant} {VALID}"),
    )
}

/// The argument `word` is most likely a misspelling of: the closest by edit distance, within
/// a third of the word's length (as rustc's own suggestions), ignoring case.
fn suggestion(word: &str) -> Option<&'static str> {
    let word = word.to_lowercase();
    let limit = word.chars().count().max(3) / 3;
    ARGUMENTS
        .iter()
        .map(|arg| (edit_distance(&word, arg), *arg))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, arg)| arg)
}

/// Levenshtein distance: insertions, deletions and substitutions of one character.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Checks a topic template with the rules `sse_core` applies when it fills one in.
fn check_template(lit: &LitStr) -> syn::Result<()> {
    let template = lit.value();
    let problem = match rules::topic_text_problem(&template) {
        Some(problem) => Some(problem.describe("the topic template")),
        None => rules::parse_template(&template)
            .err()
            .map(|err| err.to_string()),
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(syn::Error::new(lit.span(), problem)),
    }
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

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("privat", "private"), 1);
        assert_eq!(edit_distance("to_other", "to_others"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "crate"), 5);
    }

    #[test]
    fn a_misspelt_argument_gets_the_one_meant() {
        assert_eq!(suggestion("privat"), Some("private"));
        assert_eq!(suggestion("Private"), Some("private"));
        assert_eq!(suggestion("to_other"), Some("to_others"));
        assert_eq!(suggestion("topics"), Some("topic"));
        assert_eq!(suggestion("paylaod"), Some("payload"));
        assert_eq!(suggestion("colour"), None);
        assert_eq!(suggestion("channel"), None);
        assert_eq!(suggestion("x"), None);
    }
}
