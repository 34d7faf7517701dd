//! The rules for event names, topics and topic templates, in one copy for run time and
//! compile time.
//!
//! This file is compiled twice: here in `sse-core`, and in `sse-macros` through the symlink
//! `sse-macros/src/rules.rs`, so that `#[emit_event]` rejects at compile time exactly what
//! `sse-core` would reject at run time, with the same words. It therefore uses `std` only and
//! no `crate::` paths. Its messages name the thing they are about ("the event name ...") and
//! read well both in a compiler error on the attribute and in a runtime error.

use std::fmt;

/// Longest topic or selector accepted, in bytes.
pub(crate) const MAX_TOPIC_LEN: usize = 1024;

/// Most `/`-separated segments in a topic, a selector or a template. Each segment of a
/// selector with `{name}` or `*` is one level of the server's subscription index, so a bound
/// on segments is a bound on what one selector costs the server.
pub(crate) const MAX_SEGMENTS: usize = 16;

/// What is wrong with `name` as an SSE event name, if anything.
///
/// A name may be any text that fits on the `event:` line of a frame: non-empty, without line
/// breaks (they would end the line) and without NUL.
pub(crate) fn event_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the event name must not be empty")
    } else if name.contains(['\r', '\n']) {
        Some(
            "the event name must not contain a line break: it would end the `event:` line of \
             the SSE frame",
        )
    } else if name.contains('\0') {
        Some("the event name must not contain a NUL character")
    } else {
        None
    }
}

/// What can be wrong with the text of a topic, a selector or a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextProblem {
    Empty,
    TooLong,
    ControlCharacter,
    /// A `/` at either end, or `//`: a segment no selector segment can name.
    EmptySegment,
    TooManySegments,
}

impl TextProblem {
    /// The problem as a sentence about `what` ("a topic", "the topic template").
    pub(crate) fn describe(self, what: &str) -> String {
        match self {
            TextProblem::Empty => format!("{what} must not be empty"),
            TextProblem::TooLong => format!("{what} must be at most {MAX_TOPIC_LEN} bytes"),
            TextProblem::ControlCharacter => {
                format!("{what} must not contain control characters")
            }
            TextProblem::EmptySegment => format!(
                "{what} must not have an empty segment: no `/` at the start or the end, and no \
                 `//`"
            ),
            TextProblem::TooManySegments => {
                format!("{what} must have at most {MAX_SEGMENTS} `/`-separated segments")
            }
        }
    }
}

/// What is wrong with `text` as a topic, selector or template, if anything: it must be
/// non-empty, at most [`MAX_TOPIC_LEN`] bytes, without control characters, and made of at
/// most [`MAX_SEGMENTS`] non-empty `/`-separated segments.
///
/// Topics and selectors follow the same rule, so every topic an event can have is one an
/// exact selector can name. A template follows it too: the fields it inserts are non-empty
/// and without `/`, so the topic it makes has the template's segments.
pub(crate) fn topic_text_problem(text: &str) -> Option<TextProblem> {
    if text.is_empty() {
        Some(TextProblem::Empty)
    } else if text.len() > MAX_TOPIC_LEN {
        Some(TextProblem::TooLong)
    } else if text.chars().any(char::is_control) {
        Some(TextProblem::ControlCharacter)
    } else if text.split('/').any(str::is_empty) {
        Some(TextProblem::EmptySegment)
    } else if text.split('/').count() > MAX_SEGMENTS {
        Some(TextProblem::TooManySegments)
    } else {
        None
    }
}

/// One part of a topic template such as `customers/{customer.id}/orders`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TemplatePart<'a> {
    /// Text copied as is: `customers/`.
    Literal(&'a str),
    /// A payload field between braces, without them: `customer.id`. Each `.`-separated step
    /// is an object key or an array index.
    Field(&'a str),
}

/// Why a topic template cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// A `}` with no `{` before it.
    UnmatchedClose,
    /// A `{` with no `}` after it (before the next `{`).
    Unclosed,
    /// The text between the braces, which is not a field path.
    BadField(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::UnmatchedClose => f.write_str("unmatched `}` in the topic template"),
            TemplateError::Unclosed => f.write_str(
                "unclosed `{` in the topic template: write `{field}` to insert a payload field",
            ),
            TemplateError::BadField(field) => write!(
                f,
                "`{{{field}}}` does not name a payload field: write `{{id}}`, or `{{user.id}}` \
                 for a nested one"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Splits a topic template into literal text and `{field}` parts, in order. Empty literals
/// are left out, so `{a}{b}` is two fields.
///
/// A field is one or more `.`-separated steps, each made of letters, digits and `_`: a Rust
/// field name, or an index into an array or tuple.
pub(crate) fn parse_template(template: &str) -> Result<Vec<TemplatePart<'_>>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(TemplateError::UnmatchedClose);
        }
        if open > 0 {
            parts.push(TemplatePart::Literal(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after
            .find(['{', '}'])
            .filter(|&i| after.as_bytes()[i] == b'}')
            .ok_or(TemplateError::Unclosed)?;
        let field = &after[..close];
        if !is_field_path(field) {
            return Err(TemplateError::BadField(field.to_owned()));
        }
        parts.push(TemplatePart::Field(field));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest));
    }
    Ok(parts)
}

fn is_field_path(field: &str) -> bool {
    field
        .split('.')
        .all(|step| !step.is_empty() && step.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TemplatePart::{Field, Literal};

    #[test]
    fn event_names() {
        assert_eq!(event_name_problem("ok.name:with spaces/ü"), None);
        for bad in ["", "a\nb", "a\rb", "\n", "a\0b"] {
            assert!(event_name_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(
            event_name_problem(""),
            Some("the event name must not be empty")
        );
    }

    #[test]
    fn topic_texts() {
        assert_eq!(topic_text_problem("users/42"), None);
        assert_eq!(topic_text_problem(&"a".repeat(MAX_TOPIC_LEN)), None);
        assert_eq!(
            topic_text_problem(&"a".repeat(MAX_TOPIC_LEN + 1)),
            Some(TextProblem::TooLong)
        );
        assert_eq!(topic_text_problem(""), Some(TextProblem::Empty));
        for empty_segment in ["/a", "a/", "a//b", "/", "users/{id}/"] {
            assert_eq!(
                topic_text_problem(empty_segment),
                Some(TextProblem::EmptySegment),
                "{empty_segment:?}"
            );
        }
        let deepest = vec!["s"; MAX_SEGMENTS].join("/");
        assert_eq!(topic_text_problem(&deepest), None);
        assert_eq!(
            topic_text_problem(&format!("{deepest}/*")),
            Some(TextProblem::TooManySegments)
        );
        assert_eq!(
            topic_text_problem("a\tb"),
            Some(TextProblem::ControlCharacter)
        );
        assert_eq!(
            TextProblem::Empty.describe("a topic"),
            "a topic must not be empty"
        );
    }

    #[test]
    fn templates_split_into_parts() {
        assert_eq!(parse_template("users"), Ok(vec![Literal("users")]));
        assert_eq!(parse_template(""), Ok(vec![]));
        assert_eq!(
            parse_template("customers/{customer.id}/orders/{id}"),
            Ok(vec![
                Literal("customers/"),
                Field("customer.id"),
                Literal("/orders/"),
                Field("id"),
            ])
        );
        assert_eq!(
            parse_template("{a}{b_2}/{items.0}"),
            Ok(vec![
                Field("a"),
                Field("b_2"),
                Literal("/"),
                Field("items.0")
            ])
        );
    }

    #[test]
    fn template_mistakes() {
        assert_eq!(parse_template("a}"), Err(TemplateError::UnmatchedClose));
        assert_eq!(parse_template("{a}}"), Err(TemplateError::UnmatchedClose));
        assert_eq!(parse_template("orders/{id"), Err(TemplateError::Unclosed));
        assert_eq!(parse_template("{a{b}"), Err(TemplateError::Unclosed));
        for bad in ["{}", "{a.}", "{.a}", "{a..b}", "{order id}", "{a-b}"] {
            let field = &bad[1..bad.len() - 1];
            assert_eq!(
                parse_template(bad),
                Err(TemplateError::BadField(field.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn template_messages() {
        assert_eq!(
            TemplateError::BadField("order id".to_owned()).to_string(),
            "`{order id}` does not name a payload field: write `{id}`, or `{user.id}` for a \
             nested one"
        );
        assert_eq!(
            TemplateError::Unclosed.to_string(),
            "unclosed `{` in the topic template: write `{field}` to insert a payload field"
        );
    }
}
