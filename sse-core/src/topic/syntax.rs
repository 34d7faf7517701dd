//! The selector syntax as examples and counter-examples, in one table that the documents
//! served to clients (AsyncAPI) render and that the tests run through the parser, so what a
//! client is told is what the server accepts.

use std::fmt::Write;

/// A selector a client may send, with topics it picks and topics it does not.
pub(crate) struct Example {
    pub(crate) selector: &'static str,
    /// What the example shows, in a few words.
    pub(crate) meaning: &'static str,
    pub(crate) matches: &'static [&'static str],
    pub(crate) misses: &'static [&'static str],
}

/// A selector the server refuses (400), and why.
pub(crate) struct CounterExample {
    pub(crate) selector: &'static str,
    pub(crate) why: &'static str,
}

pub(crate) const EXAMPLES: &[Example] = &[
    Example {
        selector: "users/42",
        meaning: "no placeholder: exactly this topic",
        matches: &["users/42"],
        misses: &["users/420", "users/42/orders"],
    },
    Example {
        selector: "users/{id}",
        meaning: "`{name}`: any one non-empty segment",
        matches: &["users/42"],
        misses: &["users", "users/42/orders"],
    },
    Example {
        selector: "users/*",
        meaning: "a final `*`: one or more segments",
        matches: &["users/42", "users/42/orders"],
        misses: &["users"],
    },
    Example {
        selector: "*",
        meaning: "`*` alone: every topic",
        matches: &["users/42", "ticks"],
        misses: &[],
    },
];

pub(crate) const COUNTER_EXAMPLES: &[CounterExample] = &[
    CounterExample {
        selector: "**",
        why: "`*` is a whole segment; there is no `**`",
    },
    CounterExample {
        selector: "users/*/orders",
        why: "`*` only as the last segment",
    },
    CounterExample {
        selector: "users/x{id}",
        why: "`{name}` is a whole segment",
    },
    CounterExample {
        selector: "users/{}",
        why: "`{}` needs a name",
    },
    CounterExample {
        selector: "users//orders",
        why: "no empty segment (no `//`, no `/` at either end)",
    },
    CounterExample {
        selector: "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q",
        why: "at most 16 segments",
    },
];

/// The syntax in Markdown for clients: a paragraph on how to choose topics with the examples,
/// then one on the counter-examples, which starts with the word `Refused`.
pub(crate) fn describe() -> String {
    let mut out = String::from(
        "Choose topics with `?topic=<selector>` (repeatable); without one, every public \
         event arrives. A selector is read segment by segment, segments being separated by \
         `/`:\n",
    );
    let list = |topics: &[&str]| {
        topics
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for example in EXAMPLES {
        let _ = write!(
            out,
            "- `{}` ({}) matches {}",
            example.selector,
            example.meaning,
            list(example.matches)
        );
        if !example.misses.is_empty() {
            let _ = write!(out, "; not {}", list(example.misses));
        }
        out.push('\n');
    }
    // A blank line, or Markdown would read the next line as part of the last list item.
    out.push_str("\nRefused with 400:");
    for counter in COUNTER_EXAMPLES {
        let _ = write!(out, "\n- `{}`: {}", counter.selector, counter.why);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::TopicSelector;

    #[test]
    fn every_example_parses_and_matches_as_it_says() {
        for example in EXAMPLES {
            let selector = TopicSelector::parse(example.selector)
                .unwrap_or_else(|err| panic!("{:?} is refused: {err}", example.selector));
            for topic in example.matches {
                assert!(selector.matches(topic), "{selector} ~ {topic}");
            }
            for topic in example.misses {
                assert!(!selector.matches(topic), "{selector} !~ {topic}");
            }
        }
    }

    #[test]
    fn every_counter_example_is_refused() {
        for counter in COUNTER_EXAMPLES {
            assert!(
                TopicSelector::parse(counter.selector).is_err(),
                "{:?} is accepted",
                counter.selector
            );
        }
    }

    #[test]
    fn the_description_shows_every_example_and_counter_example() {
        let text = describe();
        for example in EXAMPLES {
            assert!(
                text.contains(&format!("- `{}` (", example.selector)),
                "{text}"
            );
        }
        let (_, refused) = text.split_once("Refused").expect("a Refused part");
        for counter in COUNTER_EXAMPLES {
            assert!(
                refused.contains(&format!("- `{}`: ", counter.selector)),
                "{text}"
            );
        }
    }
}
