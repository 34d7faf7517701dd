//! Topics and topic selectors.
//!
//! A topic is a string such as `users/42`, read as `/`-separated segments. A subscriber picks
//! topics with selectors; an event's topics come from `#[emit_event(.., topic = "...")]`
//! templates or are given to [`Broadcaster::publish_to`](crate::Broadcaster::publish_to).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::InvalidTopic;
use crate::wire::rules;

/// Longest topic or selector accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = rules::MAX_TOPIC_LEN;

/// Most `/`-separated segments in a topic or selector.
pub const MAX_SEGMENTS: usize = rules::MAX_SEGMENTS;

/// A pattern that picks topics: what a subscriber asks for with `?topic=...`, and what a token
/// allows.
///
/// Syntax, segment by segment (segments are separated by `/`):
///
/// | selector | matches |
/// |---|---|
/// | `users/42` | exactly the topic `users/42` |
/// | `users/{id}` | `users/` and any one non-empty segment: `users/42`, not `users/42/orders` |
/// | `users/*` | `users/` and one or more segments: `users/42`, `users/42/orders`, not `users` |
/// | `*` | every topic |
///
/// `{name}` and `*` must each be a whole segment, and `*` only the last one; `{`, `}` and `*`
/// appear nowhere else. A selector is at most [`MAX_TOPIC_LEN`] bytes and [`MAX_SEGMENTS`]
/// segments, none of them empty (no `/` at either end, no `//`), without control characters.
/// Topics follow the same rules.
///
/// ```
/// use sse_core::TopicSelector;
///
/// let s: TopicSelector = "orders/{id}/*".parse().unwrap();
/// assert!(s.matches("orders/7/items/3"));
/// assert!(!s.matches("orders/7"));
/// assert!("orders/{".parse::<TopicSelector>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TopicSelector {
    /// Shared with the subscription index, which keys exact topics by it.
    raw: Arc<str>,
    kind: Matcher,
}

/// A selector's structure: every topic, one topic, or a pattern of segments.
pub(crate) enum Shape<'a> {
    Any,
    Exact(&'a Arc<str>),
    Pattern(&'a [Part]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Matcher {
    /// `*`: every topic.
    Any,
    /// No placeholder: string equality, the common case.
    Exact,
    Pattern(Box<[Part]>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(Box<str>),
    /// `{name}`: one non-empty segment.
    Var,
    /// A final `*`: one or more segments (a non-empty remainder).
    Rest,
}

impl TopicSelector {
    /// Parses a selector; see the type's docs for the syntax.
    ///
    /// # Errors
    ///
    /// [`InvalidTopic`] with the reason: empty, too long, control characters, or a segment
    /// that is not literal text, `{name}` or a final `*`.
    pub fn parse(raw: &str) -> Result<Self, InvalidTopic> {
        check_text(raw, "a topic selector")?;
        if raw == "*" {
            return Ok(Self {
                raw: raw.into(),
                kind: Matcher::Any,
            });
        }
        if !raw.contains(['{', '}', '*']) {
            return Ok(Self {
                raw: raw.into(),
                kind: Matcher::Exact,
            });
        }
        let segments: Vec<&str> = raw.split('/').collect();
        let mut parts = Vec::with_capacity(segments.len());
        for (i, seg) in segments.iter().enumerate() {
            let part = if *seg == "*" {
                if i + 1 != segments.len() {
                    return Err(InvalidTopic::new(format!(
                        "`*` may only be the last segment of a topic selector: {raw:?}"
                    )));
                }
                Part::Rest
            } else if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}', '*']) {
                    return Err(InvalidTopic::new(format!(
                        "a `{{name}}` part needs a name without `{{`, `}}` or `*`: {raw:?}"
                    )));
                }
                Part::Var
            } else if seg.contains(['{', '}', '*']) {
                return Err(InvalidTopic::new(format!(
                    "`{{name}}` and `*` must each be a whole segment (between `/`): {raw:?}"
                )));
            } else {
                Part::Lit((*seg).into())
            };
            parts.push(part);
        }
        Ok(Self {
            raw: raw.into(),
            kind: Matcher::Pattern(parts.into()),
        })
    }

    /// A selector matching exactly `topic`, read literally: `{`, `}` and `*` in it are plain
    /// characters. Use it to build grants from user data, which must never widen them:
    ///
    /// ```
    /// use sse_core::TopicSelector;
    ///
    /// let user = "{id}"; // from a request: anything
    /// let grant = TopicSelector::literal(&format!("users/{user}/private")).unwrap();
    /// assert!(!grant.matches("users/42/private"));
    /// assert!(grant.matches("users/{id}/private"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidTopic`], as for a topic: empty, longer than [`MAX_TOPIC_LEN`] or
    /// [`MAX_SEGMENTS`], with an empty segment, or with control characters.
    pub fn literal(topic: &str) -> Result<Self, InvalidTopic> {
        validate_topic(topic)?;
        Ok(Self {
            raw: topic.into(),
            kind: Matcher::Exact,
        })
    }

    /// How the selector is built, for the subscription index.
    pub(crate) fn shape(&self) -> Shape<'_> {
        match &self.kind {
            Matcher::Any => Shape::Any,
            Matcher::Exact => Shape::Exact(&self.raw),
            Matcher::Pattern(parts) => Shape::Pattern(parts),
        }
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether `topic` is one this selector picks.
    pub fn matches(&self, topic: &str) -> bool {
        match &self.kind {
            Matcher::Any => true,
            Matcher::Exact => *self.raw == *topic,
            Matcher::Pattern(parts) => matches_parts(parts, topic),
        }
    }

    /// Whether every topic this selector matches is also matched by `outer`: `users/42` and
    /// `users/{id}` are within `users/*`; `users/*` is not within `users/{id}`.
    ///
    /// ```
    /// use sse_core::TopicSelector;
    /// let sel = |s: &str| s.parse::<TopicSelector>().unwrap();
    /// assert!(sel("users/42/private").is_within(&sel("users/{id}/private")));
    /// assert!(!sel("users/*").is_within(&sel("users/{id}/private")));
    /// ```
    pub fn is_within(&self, outer: &TopicSelector) -> bool {
        match (&self.kind, &outer.kind) {
            (_, Matcher::Any) => true,
            (Matcher::Any, _) => false,
            (_, Matcher::Exact) => matches!(self.kind, Matcher::Exact) && self.raw == outer.raw,
            (Matcher::Exact, Matcher::Pattern(parts)) => matches_parts(parts, &self.raw),
            (Matcher::Pattern(inner), Matcher::Pattern(outer)) => parts_within(inner, outer),
        }
    }
}

fn matches_parts(parts: &[Part], topic: &str) -> bool {
    let mut rest = topic;
    for (i, part) in parts.iter().enumerate() {
        if *part == Part::Rest {
            return !rest.is_empty();
        }
        let (segment, tail) = match rest.split_once('/') {
            Some((segment, tail)) => (segment, Some(tail)),
            None => (rest, None),
        };
        let ok = match part {
            Part::Lit(lit) => **lit == *segment,
            Part::Var => !segment.is_empty(),
            Part::Rest => false,
        };
        match (ok, tail) {
            (false, _) => return false,
            (true, Some(tail)) => rest = tail,
            (true, None) => return i + 1 == parts.len(),
        }
    }
    // The selector ended before the topic did.
    false
}

fn parts_within(inner: &[Part], outer: &[Part]) -> bool {
    match (inner.split_first(), outer.split_first()) {
        (None, None) => true,
        // A remainder of one empty literal segment is the empty string, which `*` rejects.
        (Some(_), Some((Part::Rest, _))) => !matches!(inner, [Part::Lit(l)] if l.is_empty()),
        (Some((Part::Rest, _)), Some(_)) => false,
        (Some((a, inner)), Some((b, outer))) => {
            let segment_within = match (a, b) {
                (Part::Lit(x), Part::Lit(y)) => x == y,
                (Part::Lit(x), Part::Var) => !x.is_empty(),
                (Part::Var, Part::Var) => true,
                _ => false,
            };
            segment_within && parts_within(inner, outer)
        }
        _ => false,
    }
}

impl FromStr for TopicSelector {
    type Err = InvalidTopic;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for TopicSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicSelector({:?})", self.raw)
    }
}

impl fmt::Display for TopicSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Checks that `topic` can be an event's topic: what an exact selector accepts (see
/// [`rules::topic_text_problem`]).
pub(crate) fn validate_topic(topic: &str) -> Result<(), InvalidTopic> {
    check_text(topic, "a topic")
}

/// `selectors` without repeats and without those within another of them: the same topics,
/// each picked by fewer selectors. A subscriber's selectors are checked for every event of
/// its audience and each sits in the subscription index, so `?topic=*` sent 32 times costs
/// what one does. Of two selectors picking the same topics, the first is kept.
pub(crate) fn merge(mut selectors: Vec<TopicSelector>) -> Vec<TopicSelector> {
    let mut i = 0;
    while i < selectors.len() {
        let covered = selectors.iter().enumerate().any(|(j, other)| {
            j != i
                && selectors[i].is_within(other)
                // Equivalent ones: only the later is dropped.
                && (j < i || !other.is_within(&selectors[i]))
        });
        if covered {
            selectors.remove(i);
        } else {
            i += 1;
        }
    }
    selectors
}

fn check_text(s: &str, what: &str) -> Result<(), InvalidTopic> {
    match rules::topic_text_problem(s) {
        Some(problem) => Err(InvalidTopic::new(problem.describe(what))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> TopicSelector {
        TopicSelector::parse(s).unwrap()
    }

    #[test]
    fn matching() {
        let cases = [
            ("users/42", "users/42", true),
            ("users/42", "users/420", false),
            ("users/{id}", "users/42", true),
            ("users/{id}", "users/", false),
            ("users/{id}", "users/42/x", false),
            ("users/*", "users/42/x", true),
            ("users/*", "users/", false),
            ("users/*", "users", false),
            ("users/*", "usersx/1", false),
            ("*", "anything/at/all", true),
            ("{a}/{b}", "x/y", true),
            ("{a}/{b}", "x", false),
        ];
        for (s, topic, expected) in cases {
            assert_eq!(sel(s).matches(topic), expected, "{s} ~ {topic}");
        }
    }

    #[test]
    fn malformed_selectors() {
        for bad in [
            "", "a/*/b", "a/{", "a/}", "a/{}", "a/x{id}", "a/*x", "**", "a\nb", "{a{b}}",
        ] {
            assert!(TopicSelector::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TopicSelector::parse(&"a".repeat(MAX_TOPIC_LEN + 1)).is_err());
    }

    #[test]
    fn selector_with_empty_segment_is_refused() {
        for bad in ["users/", "/users", "users//42", "users//*", "/", "{id}//*"] {
            let err = TopicSelector::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("empty segment"), "{bad:?}: {err}");
        }
        let deep = format!("k1{}*", "/".repeat(1018));
        assert!(TopicSelector::parse(&deep).is_err());
        assert!(TopicSelector::literal("users//42").is_err());
    }

    #[test]
    fn selector_with_too_many_segments_is_refused() {
        let deepest = vec!["{x}"; MAX_SEGMENTS].join("/");
        assert!(TopicSelector::parse(&deepest).is_ok());
        let err = TopicSelector::parse(&format!("{deepest}/*")).unwrap_err();
        assert!(err.to_string().contains("at most 16"), "{err}");
        assert!(validate_topic(&vec!["a"; MAX_SEGMENTS + 1].join("/")).is_err());
    }

    #[test]
    fn merging_drops_repeats_and_selectors_within_others() {
        let merged = |list: &[&str]| -> Vec<String> {
            merge(list.iter().map(|s| sel(s)).collect())
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        assert_eq!(merged(&["*"; 32]), ["*"]);
        assert_eq!(merged(&["users/42", "*", "users/{id}"]), ["*"]);
        assert_eq!(
            merged(&[
                "users/42",
                "users/{id}",
                "orders/1",
                "users/{x}",
                "orders/1"
            ]),
            ["users/{id}", "orders/1"]
        );
        assert_eq!(merged(&["a/{x}", "{y}/b"]), ["a/{x}", "{y}/b"]);
    }

    #[test]
    fn a_user_value_cannot_widen_a_literal_grant() {
        for user in ["{x}", "*", "42/*", "{a}/{b}"] {
            let topic = format!("users/{user}/private");
            let grant = TopicSelector::literal(&topic).unwrap();
            assert!(!grant.matches("users/42/private"), "{user}");
            assert!(!sel("users/42/private").is_within(&grant), "{user}");
            assert!(grant.matches(&topic));
        }
        // What `parse` would have made of the same string.
        assert!(sel("users/{x}/private").matches("users/42/private"));
        assert!(TopicSelector::literal("").is_err());
        assert!(TopicSelector::literal("a\nb").is_err());
    }

    #[test]
    fn containment() {
        let within = [
            ("users/42/private", "users/{id}/private", true),
            ("users/{x}/private", "users/{id}/private", true),
            ("users/*", "users/{id}/private", false),
            ("users/42", "users/*", true),
            ("users/{id}/*", "users/*", true),
            ("users/*", "users/*", true),
            ("*", "users/*", false),
            ("users/42", "*", true),
            ("users/{id}", "users/42", false),
        ];
        for (a, b, expected) in within {
            assert_eq!(sel(a).is_within(&sel(b)), expected, "{a} within {b}");
        }
    }

    mod from_outside {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn any_selector_parses_or_is_refused_and_matches_consistently(
                raw in "[a-z7/{}*]{0,16}",
                topic in "[a-z7/]{1,12}",
            ) {
                if let Ok(selector) = TopicSelector::parse(&raw) {
                    prop_assert_eq!(selector.to_string(), raw.clone());
                    // A topic matched is a literal selector within it.
                    if let Ok(exact) = TopicSelector::literal(&topic) {
                        if !topic.contains(['{', '}', '*']) {
                            prop_assert_eq!(selector.matches(&topic), exact.is_within(&selector));
                        }
                    }
                }
            }
        }
    }
}
