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
//! A template becomes one selector per shape of topic it matches, read in reverse of how RFC
//! 6570 expands it:
//!
//! - `{var}` (level 1), a whole segment, matches any one non-empty segment, as sse-core's
//!   `{name}` does: `https://example.com/books/{id}` is the selector `books/{id}`;
//! - `{+var}` (level 2, reserved expansion, which keeps `/`), as the last segment, matches
//!   one or more segments: `files/{+path}` is `files/*`;
//! - `{/var,...}` (level 3, path segments; `{/a}{/b}` is the same), after a segment or at the
//!   start, matches up to that many segments: `subscriptions{/topic}{/subscriber}` is
//!   `subscriptions`, `subscriptions/{topic}` and `subscriptions/{topic}/{subscriber}`.
//!
//! Other operators (`{#var}`, `{?var}`, ...), modifiers (`{var*}`, `{var:3}`), other lists
//! (`{a,b}`) and a variable inside a segment (`{id}.json`) are refused with a message saying
//! so. Crates that match URIs against templates (`uri-template-ex`, `uri-template-system`)
//! test one URI at a time with a regular expression; the subscription index needs a
//! template as the segment patterns it indexes, so that every event is matched once for all
//! subscribers, which is why templates are read into selectors here.

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

    /// The sse-core selectors of the Mercure selector `selector`: `*`, an exact topic, or a
    /// URI template (it has a `{` or `}`). A template with optional path segments
    /// (`{/var}`) is one selector for each number of them present.
    pub(crate) fn selectors(&self, selector: &str) -> Result<Vec<TopicSelector>, InvalidTopic> {
        if selector == "*" {
            return Ok(vec![TopicSelector::parse("*")?]);
        }
        if !selector.contains(['{', '}']) {
            return Ok(vec![TopicSelector::literal(&self.topic(selector)?)?]);
        }
        let items = template_items(selector, self.relative(selector))?;
        let mut alternatives = vec![Vec::new()];
        for item in &items {
            alternatives = match item {
                Item::Segment(segment) => (alternatives.into_iter())
                    .map(|mut alt| {
                        alt.push(segment.clone());
                        alt
                    })
                    .collect(),
                Item::Optional(names) => (alternatives.iter())
                    .flat_map(|alt| {
                        (0..=names.len()).map(move |n| {
                            let mut alt = alt.clone();
                            alt.extend(names[..n].iter().map(|name| format!("{{{name}}}")));
                            alt
                        })
                    })
                    .collect(),
            };
            if alternatives.len() > MAX_ALTERNATIVES {
                return Err(InvalidTopic::new(format!(
                    "the URI template {selector:?} has too many optional segments: at most \
                     {MAX_ALTERNATIVES} shapes of topic are supported"
                )));
            }
        }
        let mut selectors = Vec::with_capacity(alternatives.len());
        for alt in alternatives.into_iter().filter(|alt| !alt.is_empty()) {
            if alt.len() > MAX_SEGMENTS {
                return Err(InvalidTopic::new(format!(
                    "the URI template {selector:?} has more than {MAX_SEGMENTS} `/`-separated \
                     parts"
                )));
            }
            selectors.push(TopicSelector::parse(&alt.join("/")).map_err(|e| mention(selector, e))?);
        }
        if selectors.is_empty() {
            return Err(InvalidTopic::new(format!(
                "the URI template {selector:?} matches no topic"
            )));
        }
        Ok(selectors)
    }
}

/// How many topic shapes one template may stand for (its optional segments multiply them).
const MAX_ALTERNATIVES: usize = 16;

/// A part of a template, in sse-core's selector syntax.
#[derive(Debug)]
enum Item {
    /// One segment: text, `{var}`, or `*` for a trailing `{+var}`.
    Segment(String),
    /// `{/a,b}` (or `{/a}{/b}`): up to that many segments, each any one segment.
    Optional(Vec<String>),
}

/// Reads `relative`, the template after the base IRI, into segments and optional groups;
/// `template` is named in errors.
fn template_items(template: &str, relative: &str) -> Result<Vec<Item>, InvalidTopic> {
    let refuse = |why: String| {
        Err(InvalidTopic::new(format!(
            "the URI template {template:?} {why}"
        )))
    };
    let varchar = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '%' || c == '.';
    let mut items = Vec::new();
    // The segment being read (its text so far, maybe empty), or `None` right after an
    // expression that made a whole item, where only `/` or another expression may follow.
    let mut segment = Some(String::new());
    let mut rest = relative;
    while let Some(c) = rest.chars().next() {
        if c != '{' {
            rest = &rest[c.len_utf8()..];
            match (c, segment.as_mut()) {
                ('/', Some(text)) => items.push(Item::Segment(escape(&std::mem::take(text)))),
                ('/', None) => segment = Some(String::new()),
                ('}', _) => return refuse("has a `}` without its `{`".to_owned()),
                ('*', _) => return refuse("has a `*` in its text, which is not supported".into()),
                (_, Some(text)) => text.push(c),
                (_, None) => return refuse("has text right after an expression".to_owned()),
            }
            continue;
        }
        let Some(end) = rest.find('}') else {
            return refuse("has a `{` without its `}`".to_owned());
        };
        let expression = &rest[1..end];
        rest = &rest[end + 1..];
        let (operator, list) = match expression.chars().next() {
            Some(op @ ('/' | '+')) => (Some(op), &expression[1..]),
            _ => (None, expression),
        };
        let names: Vec<String> = list.split(',').map(str::to_owned).collect();
        if names
            .iter()
            .any(|n| n.is_empty() || !n.chars().all(varchar))
        {
            return refuse(format!(
                "has the expression `{{{expression}}}`; supported are `{{var}}` and `{{+var}}` \
                 as a whole segment and `{{/var,...}}`, without modifiers (`*`, `:n`) or other \
                 operators"
            ));
        }
        if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with("{/")) {
            return refuse(format!(
                "has text right after `{{{expression}}}`; a `/` or `{{/...}}` must follow it"
            ));
        }
        if operator == Some('/') {
            match segment.take() {
                Some(text) => items.push(Item::Segment(escape(&text))),
                // Right after another group: one longer group.
                None => {
                    if let Some(Item::Optional(group)) = items.last_mut() {
                        group.extend(names);
                        continue;
                    }
                }
            }
            items.push(Item::Optional(names));
            continue;
        }
        if segment.as_deref() != Some("") {
            return refuse(format!(
                "has `{{{expression}}}` inside a segment; it must be a whole `/`-separated \
                 segment"
            ));
        }
        if names.len() > 1 {
            return refuse(format!(
                "has the list `{{{expression}}}`; only `{{/a,b}}` may list variables"
            ));
        }
        if operator == Some('+') && !rest.is_empty() {
            return refuse(format!(
                "has `{{{expression}}}` before its end; `{{+var}}` (any rest of the topic) \
                 must be the last segment"
            ));
        }
        let part = match operator {
            Some(_) => "*".to_owned(),
            None => format!("{{{}}}", names[0]),
        };
        items.push(Item::Segment(part));
        segment = None;
    }
    if let Some(text) = segment {
        items.push(Item::Segment(escape(&text)));
    }
    Ok(items)
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

    /// The one selector of a selector that stands for one shape of topic.
    fn one(m: &TopicMap, selector: &str) -> TopicSelector {
        let mut all = m.selectors(selector).unwrap();
        assert_eq!(all.len(), 1, "{selector}: {all:?}");
        all.remove(0)
    }

    #[test]
    fn templates_become_selectors() {
        let m = map();
        let sel = one(&m, "https://example.com/books/{id}");
        assert_eq!(sel.as_str(), "books/{id}");
        assert!(sel.matches("books/7"));
        assert!(!sel.matches("books/7/reviews"));
        let other = one(&m, "https://other.org/books/{id}");
        assert!(other.matches(&m.topic("https://other.org/books/1").unwrap()));
        assert!(!other.matches(&m.topic("https://example.com/books/1").unwrap()));
        assert!(one(&m, "*").matches("anything/at/all"));
        // An exact selector with `*` in it is text, not a wildcard.
        let exact = one(&m, "https://example.com/a*");
        assert!(exact.matches("a*") && !exact.matches("ab"));
    }

    fn matches_any(selectors: &[TopicSelector], topic: &str) -> bool {
        selectors.iter().any(|s| s.matches(topic))
    }

    #[test]
    fn optional_path_segments_and_reserved_expansion_match_as_rfc_6570_expands_them() {
        let m = TopicMap::default();
        // The subscriptions API's own template, as the Mercure spec writes its claims.
        let subs = m
            .selectors("/.well-known/mercure/subscriptions{/topic}{/subscriber}")
            .unwrap();
        assert_eq!(subs.len(), 3, "{subs:?}");
        for iri in [
            "/.well-known/mercure/subscriptions",
            "/.well-known/mercure/subscriptions/a%2Fb",
            "/.well-known/mercure/subscriptions/a%2Fb/urn%3Auuid%3A1",
        ] {
            assert!(matches_any(&subs, &m.topic(iri).unwrap()), "{iri}");
        }
        for iri in [
            "/.well-known/mercure/subscriptions/a/b/c",
            "/.well-known/mercure/other",
            ".well-known/mercure/subscriptions",
        ] {
            assert!(!matches_any(&subs, &m.topic(iri).unwrap()), "{iri}");
        }
        // One group of two is the same as two groups of one.
        let shapes = |v: Vec<TopicSelector>| v.iter().map(|s| s.as_str().to_owned()).collect();
        let listed: Vec<String> = shapes(m.selectors("/s{/topic,subscriber}").unwrap());
        assert_eq!(listed, ["%/s", "%/s/{topic}", "%/s/{topic}/{subscriber}"]);
        let split: Vec<String> = shapes(m.selectors("/s{/topic}{/subscriber}").unwrap());
        assert_eq!(listed, split);
        // A group in the middle, then more text.
        let middle = map()
            .selectors("https://example.com/books{/id}/reviews")
            .unwrap();
        let topics = ["books/reviews", "books/7/reviews"];
        assert!(topics.iter().all(|t| matches_any(&middle, t)));
        assert!(!matches_any(&middle, "books/7/8/reviews"));
        // `{+rest}` as the last segment: one or more segments.
        let rest = one(&map(), "https://example.com/files/{+path}");
        assert!(rest.matches("files/a") && rest.matches("files/a/b/c"));
        assert!(!rest.matches("files") && !rest.matches("other/a"));
    }

    #[test]
    fn unsupported_templates_are_refused_with_the_reason() {
        let m = map();
        for (bad, says) in [
            (
                "https://example.com/books/{+path}/x",
                "must be the last segment",
            ),
            (
                "https://example.com/books/{id}.json",
                "a `/` or `{/...}` must follow",
            ),
            ("https://example.com/books/x{id}", "inside a segment"),
            ("https://example.com/books/{id*}", "without modifiers"),
            ("https://example.com/books/{#id}", "without modifiers"),
            ("https://example.com/books/{a,b}", "list"),
            ("https://example.com/books/{}", "without modifiers"),
            ("https://example.com/books/{id", "without its `}`"),
            ("https://example.com/books/id}", "without its `{`"),
            ("https://example.com/*/{id}", "`*`"),
            (
                "https://example.com/b{/a}x",
                "a `/` or `{/...}` must follow",
            ),
            (
                "{/a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q}",
                "too many optional segments",
            ),
        ] {
            let err = m.selectors(bad).expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(m.topic("a\nb").is_err());
        assert!(m.topic("").is_err());
    }
}
