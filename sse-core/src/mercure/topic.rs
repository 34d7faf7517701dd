//! How Mercure topics (IRIs such as `https://example.com/books/1`, or any string) and their
//! selectors (exact topics, `*`, or RFC 6570 URI templates) map onto sse-core's topics and
//! [`TopicSelector`]s, so that both protocols share one index and one stream of events.
//!
//! The mapping, in two steps:
//!
//! 1. With a [base IRI](super::Mercure::base_iri) such as `https://example.com/`, a topic
//!    under it is the path after it: `https://example.com/books/1` is the sse-core topic
//!    `books/1`, the very topic an `#[emit_event(.., topic = "books/{id}")]` handler
//!    publishes to. Any other topic is kept whole. (So `https://example.com/books/1` and the
//!    raw Mercure topic `books/1` are one topic: the base says they are.)
//! 2. The text is read as `/`-separated segments, as sse-core reads topics. sse-core has no
//!    empty segment, so an empty one (the `//` of `https://`) is written `%`, and a segment
//!    that is `%` followed by `25`s gets one more `25`: `https://other.org/a` is
//!    `https:/%/other.org/a`. Nothing else changes, and no two Mercure topics share an
//!    sse-core topic.
//!
//! A template's `{var}` (RFC 6570 level 1) must be a whole segment, and matches any one
//! non-empty segment, as sse-core's `{name}` does: `https://example.com/books/{id}` is the
//! selector `books/{id}`. Operators (`{+var}`, `{#var}`, ...), modifiers (`{var*}`,
//! `{var:3}`), lists (`{a,b}`) and a variable inside a segment (`{id}.json`) are refused with
//! a message saying so.

use crate::error::InvalidTopic;
use crate::topic::{TopicSelector, MAX_SEGMENTS};

/// Maps Mercure topics and selectors onto sse-core's; see the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct TopicMap {
    base: Option<String>,
}

impl TopicMap {
    pub(crate) fn new(base: Option<String>) -> Self {
        Self {
            base: base.filter(|b| !b.is_empty()),
        }
    }

    /// The text after the base IRI when `iri` is under it (and not the base itself).
    fn relative<'a>(&self, iri: &'a str) -> &'a str {
        match self.base.as_deref().and_then(|b| iri.strip_prefix(b)) {
            Some(rest) if !rest.is_empty() => rest,
            _ => iri,
        }
    }

    /// The sse-core topic of the Mercure topic `iri`.
    pub(crate) fn topic(&self, iri: &str) -> Result<String, InvalidTopic> {
        if iri.is_empty() {
            return Err(InvalidTopic::new("a topic must not be empty".to_owned()));
        }
        let topic = escape_segments(self.relative(iri));
        TopicSelector::literal(&topic).map_err(|err| mention(iri, err))?;
        Ok(topic)
    }

    /// The sse-core selector of the Mercure selector `selector`: `*`, an exact topic, or a
    /// URI template (it has a `{` or `}`).
    pub(crate) fn selector(&self, selector: &str) -> Result<TopicSelector, InvalidTopic> {
        if selector == "*" {
            return TopicSelector::parse("*");
        }
        if !selector.contains(['{', '}']) {
            return TopicSelector::literal(&self.topic(selector)?);
        }
        let relative = self.relative(selector);
        let segments: Vec<&str> = relative.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return Err(InvalidTopic::new(format!(
                "the URI template {selector:?} has more than {MAX_SEGMENTS} `/`-separated parts"
            )));
        }
        let mut parts = Vec::with_capacity(segments.len());
        for segment in segments {
            parts.push(template_segment(selector, segment)?);
        }
        TopicSelector::parse(&parts.join("/")).map_err(|err| mention(selector, err))
    }
}

/// One segment of a template, in sse-core's selector syntax.
fn template_segment(template: &str, segment: &str) -> Result<String, InvalidTopic> {
    if !segment.contains(['{', '}']) {
        if segment.contains('*') {
            return Err(InvalidTopic::new(format!(
                "the URI template {template:?} has a `*` in its text, which is not supported"
            )));
        }
        return Ok(escape(segment));
    }
    let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return Err(InvalidTopic::new(format!(
            "the URI template {template:?} has an expression inside a segment; only \
             `{{var}}` as a whole `/`-separated segment is supported"
        )));
    };
    if name.starts_with(['+', '#', '.', '/', ';', '?', '&', '=', ',', '!', '@', '|']) {
        return Err(InvalidTopic::new(format!(
            "the URI template {template:?} uses an operator (`{{{name}}}`); only level-1 \
             `{{var}}` expressions are supported"
        )));
    }
    let varchar = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '%' || c == '.';
    if name.is_empty() || !name.chars().all(varchar) {
        return Err(InvalidTopic::new(format!(
            "the URI template {template:?} has the expression `{{{name}}}`; only level-1 \
             `{{var}}` expressions (a variable name, no modifier or list) are supported"
        )));
    }
    Ok(format!("{{{name}}}"))
}

fn escape_segments(text: &str) -> String {
    text.split('/').map(escape).collect::<Vec<_>>().join("/")
}

/// An empty segment becomes `%`; `%` followed by `25`s gets one more `25`.
fn escape(segment: &str) -> String {
    let is_marker = segment
        .strip_prefix('%')
        .is_some_and(|rest| rest.len() % 2 == 0 && rest.as_bytes().chunks(2).all(|c| c == b"25"));
    if segment.is_empty() {
        "%".to_owned()
    } else if is_marker {
        format!("{segment}25")
    } else {
        segment.to_owned()
    }
}

fn mention(what: &str, err: InvalidTopic) -> InvalidTopic {
    InvalidTopic::new(format!("{what:?}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> TopicMap {
        TopicMap::new(Some("https://example.com/".to_owned()))
    }

    #[test]
    fn topics_under_the_base_are_their_path_others_are_kept_whole() {
        let m = map();
        assert_eq!(m.topic("https://example.com/books/1").unwrap(), "books/1");
        assert_eq!(m.topic("books/1").unwrap(), "books/1");
        assert_eq!(
            m.topic("https://other.org/books/1").unwrap(),
            "https:/%/other.org/books/1"
        );
        assert_eq!(
            m.topic("https://example.com/").unwrap(),
            "https:/%/example.com/%"
        );
        assert_eq!(m.topic("urn:isbn:123").unwrap(), "urn:isbn:123");
        assert_eq!(TopicMap::default().topic("/a/").unwrap(), "%/a/%");
    }

    #[test]
    fn no_two_mercure_topics_share_an_sse_topic() {
        let m = TopicMap::default();
        let topics = [
            "a//b",
            "a/%/b",
            "a/%25/b",
            "a/%2525/b",
            "a/%2/b",
            "/",
            "%",
            "%25",
        ];
        let mapped: std::collections::HashSet<_> =
            topics.iter().map(|t| m.topic(t).unwrap()).collect();
        assert_eq!(mapped.len(), topics.len(), "{mapped:?}");
    }

    #[test]
    fn templates_become_selectors() {
        let m = map();
        let sel = m.selector("https://example.com/books/{id}").unwrap();
        assert_eq!(sel.as_str(), "books/{id}");
        assert!(sel.matches("books/7"));
        assert!(!sel.matches("books/7/reviews"));
        let other = m.selector("https://other.org/books/{id}").unwrap();
        assert!(other.matches(&m.topic("https://other.org/books/1").unwrap()));
        assert!(!other.matches(&m.topic("https://example.com/books/1").unwrap()));
        assert!(m.selector("*").unwrap().matches("anything/at/all"));
        // An exact selector with `*` in it is text, not a wildcard.
        let exact = m.selector("https://example.com/a*").unwrap();
        assert!(exact.matches("a*") && !exact.matches("ab"));
    }

    #[test]
    fn unsupported_templates_are_refused_with_the_reason() {
        let m = map();
        for (bad, says) in [
            ("https://example.com/books/{+path}", "operator"),
            ("https://example.com/books/{id}.json", "inside a segment"),
            ("https://example.com/books/{id*}", "level-1"),
            ("https://example.com/books/{a,b}", "level-1"),
            ("https://example.com/books/{}", "level-1"),
            ("https://example.com/books/{id", "inside a segment"),
            ("https://example.com/*/{id}", "`*`"),
        ] {
            let err = m.selector(bad).expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(m.topic("a\nb").is_err());
        assert!(m.topic("").is_err());
    }
}
