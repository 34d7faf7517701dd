//! The subscription index: which selective subscribers follow which topics. Exact topics are
//! a hash map; selectors with `{var}` and `*` sit in a trie of segments; `*` alone is a list.
//! Publishing looks up an event's topics and wakes only the subscribers found, so the cost of
//! an event follows its audience, not everyone connected.

use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use super::mailbox::Mailbox;
use crate::topic::{Part, Shape, TopicSelector};

/// A subscriber's key in the index.
pub(crate) type SubId = u64;

#[derive(Default)]
pub(crate) struct Index {
    /// Keyed by the selector's own text (shared, not copied); one subscriber inline.
    exact: HashMap<Arc<str>, SmallVec<[SubId; 1]>>,
    patterns: Node,
    /// Subscribers with the selector `*`.
    any: Vec<SubId>,
    subscribers: HashMap<SubId, Entry>,
    next_id: SubId,
}

/// A subscriber: its selectors are read from its mailbox's filter, not copied.
struct Entry {
    mailbox: Arc<Mailbox>,
}

/// One segment position in the trie of patterns.
#[derive(Default)]
struct Node {
    literal: Children,
    var: Option<Box<Node>>,
    /// Patterns ending here with `*`: one or more further segments.
    rest: Vec<SubId>,
    /// Patterns ending here.
    end: Vec<SubId>,
}

/// The literal segments that follow a node. Most nodes have one (each level of a pattern
/// no other subscriber shares), so one is held inline: a map with room for one entry costs
/// about 512 bytes, this about 130, which bounds what a stream's selectors cost the server.
enum Children {
    One(Box<str>, Box<Node>),
    /// None (an empty map does not allocate) or several.
    Many(HashMap<Box<str>, Node>),
}

impl Default for Children {
    fn default() -> Self {
        Children::Many(HashMap::new())
    }
}

impl Children {
    fn is_empty(&self) -> bool {
        matches!(self, Children::Many(map) if map.is_empty())
    }

    fn get(&self, segment: &str) -> Option<&Node> {
        match self {
            Children::One(key, node) => (**key == *segment).then_some(&**node),
            Children::Many(map) => map.get(segment),
        }
    }

    fn get_mut(&mut self, segment: &str) -> Option<&mut Node> {
        match self {
            Children::One(key, node) => (**key == *segment).then_some(&mut **node),
            Children::Many(map) => map.get_mut(segment),
        }
    }

    /// The node after `segment`, made if missing.
    fn entry(&mut self, segment: &str) -> &mut Node {
        *self = match std::mem::take(self) {
            Children::Many(map) if map.is_empty() => Children::One(segment.into(), Box::default()),
            Children::One(key, node) if *key != *segment => Children::Many(HashMap::from([
                (key, *node),
                (segment.into(), Node::default()),
            ])),
            same => same,
        };
        match self {
            Children::One(_, node) => node,
            Children::Many(map) => map.entry(segment.into()).or_default(),
        }
    }

    fn remove(&mut self, segment: &str) {
        match self {
            Children::One(key, _) if **key == *segment => *self = Children::default(),
            Children::One(..) => {}
            Children::Many(map) => {
                map.remove(segment);
            }
        }
    }

    #[cfg(test)]
    fn nodes(&self) -> Vec<&Node> {
        match self {
            Children::One(_, node) => vec![node],
            Children::Many(map) => map.values().collect(),
        }
    }
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.var.is_none() && self.rest.is_empty() && self.end.is_empty()
    }

    fn find(&self, segments: &[&str], out: &mut Vec<SubId>) {
        let Some((first, rest)) = segments.split_first() else {
            out.extend_from_slice(&self.end);
            return;
        };
        // `*` needs a non-empty remainder: not a lone empty segment (`users/`).
        if !(rest.is_empty() && first.is_empty()) {
            out.extend_from_slice(&self.rest);
        }
        if let Some(next) = self.literal.get(first) {
            next.find(rest, out);
        }
        if let (Some(var), false) = (&self.var, first.is_empty()) {
            var.find(rest, out);
        }
    }

    fn slot(&mut self, parts: &[Part]) -> &mut Vec<SubId> {
        match parts.split_first() {
            None => &mut self.end,
            Some((Part::Rest, _)) => &mut self.rest,
            Some((Part::Lit(lit), rest)) => self.literal.entry(lit).slot(rest),
            Some((Part::Var, rest)) => self.var.get_or_insert_with(Box::default).slot(rest),
        }
    }

    /// Removes `id` from the slot of `parts`, pruning nodes left empty.
    fn remove(&mut self, parts: &[Part], id: SubId) {
        match parts.split_first() {
            None => self.end.retain(|s| *s != id),
            Some((Part::Rest, _)) => self.rest.retain(|s| *s != id),
            Some((Part::Lit(lit), rest)) => {
                if let Some(next) = self.literal.get_mut(lit) {
                    next.remove(rest, id);
                    if next.is_empty() {
                        self.literal.remove(lit);
                    }
                }
            }
            Some((Part::Var, rest)) => {
                if let Some(next) = &mut self.var {
                    next.remove(rest, id);
                    if next.is_empty() {
                        self.var = None;
                    }
                }
            }
        }
    }
}

fn selectors(mailbox: &Mailbox) -> &[TopicSelector] {
    mailbox.filter.selectors.as_deref().unwrap_or_default()
}

/// A subscriber with the selector `*` is in the `*` list only: its other selectors add
/// nothing, and the list stays apart from the rest, so that a publish takes it as it is
/// (no copy, no sort).
fn follows_everything(mailbox: &Mailbox) -> bool {
    selectors(mailbox)
        .iter()
        .any(|s| matches!(s.shape(), Shape::Any))
}

impl Index {
    /// Registers a subscriber whose filter selected `mailbox.filter.selectors`.
    pub(crate) fn insert(&mut self, mailbox: Arc<Mailbox>) -> SubId {
        let id = self.next_id;
        self.next_id += 1;
        if follows_everything(&mailbox) {
            self.any.push(id);
        } else {
            for selector in selectors(&mailbox) {
                match selector.shape() {
                    Shape::Any => {}
                    Shape::Exact(topic) => {
                        self.exact.entry(Arc::clone(topic)).or_default().push(id)
                    }
                    Shape::Pattern(parts) => self.patterns.slot(parts).push(id),
                }
            }
        }
        self.subscribers.insert(id, Entry { mailbox });
        id
    }

    /// Forgets a subscriber; no entry of it is left behind.
    pub(crate) fn remove(&mut self, id: SubId) {
        let Some(entry) = self.subscribers.remove(&id) else {
            return;
        };
        if follows_everything(&entry.mailbox) {
            self.any.retain(|s| *s != id);
            return;
        }
        for selector in selectors(&entry.mailbox) {
            match selector.shape() {
                Shape::Any => {}
                Shape::Exact(topic) => {
                    if let Some(ids) = self.exact.get_mut(&**topic) {
                        ids.retain(|s| *s != id);
                        if ids.is_empty() {
                            self.exact.remove(&**topic);
                        }
                    }
                }
                Shape::Pattern(parts) => self.patterns.remove(parts, id),
            }
        }
    }

    /// The subscribers with a selector matching one of `topics`, each once.
    pub(crate) fn matching<'a>(
        &'a self,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> impl Iterator<Item = &'a Arc<Mailbox>> + 'a {
        // The `*` list holds no one found by topic: read as it is.
        let found = self.by_topic(topics);
        (self.any.iter().copied())
            .chain(found)
            .filter_map(move |id| self.subscribers.get(&id).map(|e| &e.mailbox))
    }

    /// The subscribers, other than those of `*`, with a selector matching one of `topics`,
    /// each once.
    fn by_topic<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> Vec<SubId> {
        let mut ids = Vec::new();
        for topic in topics {
            if let Some(found) = self.exact.get(topic) {
                ids.extend_from_slice(found);
            }
            if !self.patterns.is_empty() {
                let segments: Vec<&str> = topic.split('/').collect();
                self.patterns.find(&segments, &mut ids);
            }
        }
        // A subscriber matching several ways gets the event once.
        if ids.len() > 1 {
            ids.sort_unstable();
            ids.dedup();
        }
        ids
    }

    /// Every selective subscriber.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Mailbox>> + '_ {
        self.subscribers.values().map(|e| &e.mailbox)
    }

    /// How many subscribers have a selector matching `topic`.
    pub(crate) fn presence(&self, topic: &str) -> usize {
        self.any.len() + self.by_topic([topic]).len()
    }

    /// Levels of the trie of patterns, for tests of what a subscriber may cost.
    #[cfg(test)]
    pub(crate) fn levels(&self) -> usize {
        fn count(node: &Node) -> usize {
            (node.literal.nodes().into_iter())
                .map(|n| 1 + count(n))
                .sum::<usize>()
                + node.var.as_deref().map_or(0, |n| 1 + count(n))
        }
        count(&self.patterns)
    }

    /// Selective subscribers, and the distinct exact topics they follow.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.subscribers.len(), self.exact.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use futures_util::{FutureExt, StreamExt};
    use proptest::prelude::*;

    use crate::fanout::Event;
    use crate::topic::{Filter, TopicSelector};
    use crate::{Broadcaster, EventStream};

    /// Topics over a small alphabet, so that selectors and topics meet often.
    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "7"]), 1..4)
            .prop_map(|s| s.join("/"))
    }

    fn selector() -> impl Strategy<Value = String> {
        let segment = prop::sample::select(vec!["a", "b", "7", "{x}"]);
        (
            prop::collection::vec(segment, 1..4),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(segments, rest, any)| match (any, rest) {
                (true, _) => "*".to_owned(),
                (false, true) => format!("{}/*", segments.join("/")),
                (false, false) => segments.join("/"),
            })
    }

    #[derive(Clone, Debug)]
    struct Sub {
        /// `None`: no topic chosen (every public event).
        selectors: Option<Vec<String>>,
        grants: Vec<String>,
        /// Index of the event it resumes after, if it resumes.
        resume_after: Option<usize>,
    }

    fn sub() -> impl Strategy<Value = Sub> {
        (
            prop::option::weighted(0.8, prop::collection::vec(selector(), 1..3)),
            prop::collection::vec(selector(), 0..2),
            prop::option::of(0usize..20),
        )
            .prop_map(|(selectors, grants, resume_after)| Sub {
                selectors,
                grants,
                resume_after,
            })
    }

    /// The reference: written from the rules, not from the code under test.
    fn wanted(sub: &Sub, topics: &[String], private: bool) -> bool {
        let matches = |s: &String, t: &String| TopicSelector::parse(s).unwrap().matches(t);
        match &sub.selectors {
            None => !private,
            Some(selectors) => topics.iter().any(|t| {
                selectors.iter().any(|s| matches(s, t))
                    && (!private || sub.grants.iter().any(|g| matches(g, t)))
            }),
        }
    }

    fn open(b: &Broadcaster, sub: &Sub, after: Option<String>) -> EventStream {
        let parse = |v: &[String]| v.iter().map(|s| TopicSelector::parse(s).unwrap()).collect();
        let filter = Filter {
            selectors: sub.selectors.as_deref().map(parse),
            grants: parse(&sub.grants),
            client_id: None,
        };
        EventStream::open(
            b.shared.clone(),
            crate::wire::LastEventId::parse(after.as_deref()),
            filter,
            crate::wire::gzip::Coding::Identity,
            None,
            None,
        )
        .unwrap()
    }

    /// A runtime for one test (the proptest cases cannot be `#[tokio::test]`s).
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    }

    /// The event ids (as numbers) a stream has ready.
    fn received(stream: &mut EventStream) -> Vec<u64> {
        let mut text = String::new();
        while let Some(Some(Ok(chunk))) = stream.next().now_or_never() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text.split("\n\n")
            .filter(|f| f.contains("\nevent: e"))
            .filter_map(|f| {
                f.strip_prefix("id: ")?
                    .split('\n')
                    .next()?
                    .rsplit('-')
                    .next()
            })
            .filter_map(|seq| seq.parse().ok())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn every_subscriber_gets_exactly_what_the_model_says_live_and_on_resume(
            subs in prop::collection::vec(sub(), 1..8),
            events in prop::collection::vec(
                (prop::collection::vec(topic(), 1..3), any::<bool>()), 1..30),
        ) {
            runtime().block_on(async {
                let b = Broadcaster::builder().keep_alive(None).build();
                let mut live: Vec<_> = subs.iter().map(|s| open(&b, s, None)).collect();
                let mut ids = Vec::new();
                for (topics, private) in &events {
                    let mut event = Event::new("e").json(&0).topics(topics.iter().map(String::as_str));
                    if *private {
                        event = event.private();
                    }
                    ids.push(b.publish_event(event).unwrap());
                }
                for (sub, stream) in subs.iter().zip(&mut live) {
                    let expected: Vec<u64> = events.iter().zip(&ids)
                        .filter(|((t, p), _)| wanted(sub, t, *p))
                        .map(|(_, id)| id.seq())
                        .collect();
                    let got = received(stream);
                    prop_assert_eq!(&got, &expected, "live, {:?}", sub);
                    let unique: BTreeSet<_> = got.iter().collect();
                    prop_assert_eq!(unique.len(), got.len());
                    if let Some(after) = sub.resume_after.filter(|a| *a < ids.len()) {
                        let mut resumed = open(&b, sub, Some(ids[after].to_string()));
                        let expected: Vec<u64> =
                            expected.iter().copied().filter(|s| *s > ids[after].seq()).collect();
                        prop_assert_eq!(received(&mut resumed), expected, "resumed, {:?}", sub);
                    }
                }
                Ok(())
            })?;
        }
    }

    #[test]
    fn subscribers_joining_and_leaving_while_threads_publish_lose_nothing_and_leave_no_trace() {
        runtime().block_on(async {
            let b = Broadcaster::builder().keep_alive(None).build();
            let sub = |t: &str| Sub {
                selectors: Some(vec![t.to_owned()]),
                grants: vec![],
                resume_after: None,
            };
            let mut stayer = open(&b, &sub("t/0"), None);
            let publishers: Vec<_> = (0..4)
                .map(|p| {
                    let b = b.clone();
                    std::thread::spawn(move || {
                        for i in 0..500 {
                            let topic = format!("t/{}", (p + i) % 4);
                            b.publish_event(Event::new("e").json(&i).topic(topic))
                                .unwrap();
                        }
                    })
                })
                .collect();
            let mut got = Vec::new();
            for round in 0..200 {
                // Others come and go on every topic, with patterns too.
                let churn: Vec<_> = ["t/1", "t/{x}", "t/*", "*"]
                    .iter()
                    .map(|t| open(&b, &sub(t), None))
                    .collect();
                got.extend(received(&mut stayer));
                drop(churn);
                if round % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            for p in publishers {
                p.join().unwrap();
            }
            got.extend(received(&mut stayer));
            let unique: BTreeSet<_> = got.iter().copied().collect();
            assert_eq!(unique.len(), got.len(), "no event twice");
            assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
            assert_eq!(got.len(), 500, "every event for t/0");
            drop(stayer);
            for t in ["t/0", "t/1", "t/2", "x"] {
                assert_eq!(b.presence(t), 0, "{t}");
            }
            let stats = b.stats();
            assert_eq!((stats.topic_subscribers, stats.followed_topics), (0, 0));
        });
    }

    /// A selector's level that no other subscriber shares costs one boxed node and its key:
    /// the bound on what a stream's selectors cost is this size times 64.
    #[test]
    fn a_trie_level_stays_small() {
        let size = std::mem::size_of::<super::Node>();
        assert!(size <= 112, "a node is {size} bytes");
    }

    #[test]
    fn a_subscriber_of_everything_is_one_entry_of_the_any_list() {
        runtime().block_on(async {
            let b = Broadcaster::new();
            let sub = Sub {
                selectors: Some(
                    ["*", "*", "users/42", "users/{id}", "*"]
                        .map(String::from)
                        .to_vec(),
                ),
                grants: vec![],
                resume_after: None,
            };
            let _stream = open(&b, &sub, None);
            {
                let state = b.shared.lock();
                let index = &state.index;
                assert_eq!(index.any.len(), 1, "one entry, however many `*`");
                assert_eq!(index.exact.len(), 0, "`*` covers its exact topics");
                assert_eq!(index.levels(), 0, "`*` covers its patterns");
            }
            assert_eq!(b.presence("users/42"), 1);
            assert_eq!(b.presence("orders/1"), 1);
        });
    }

    #[test]
    fn presence_counts_the_streams_that_follow_a_topic() {
        runtime().block_on(async {
            let b = Broadcaster::new();
            let s = |t: &[&str]| Sub {
                selectors: Some(t.iter().map(|s| s.to_string()).collect()),
                grants: vec![],
                resume_after: None,
            };
            let _a = open(&b, &s(&["users/42"]), None);
            let _b = open(&b, &s(&["users/{id}", "users/*"]), None);
            let _c = open(&b, &s(&["orders/1"]), None);
            let _all = open(
                &b,
                &Sub {
                    selectors: None,
                    grants: vec![],
                    resume_after: None,
                },
                None,
            );
            assert_eq!(b.presence("users/42"), 2);
            assert_eq!(b.presence("users/7"), 1);
            assert_eq!(b.presence("orders/1"), 1);
            assert_eq!(b.stats().topic_subscribers, 3);
            assert_eq!(b.stats().followed_topics, 2);
        });
    }

    #[test]
    fn presence_changes_wake_when_a_stream_with_topics_opens_or_ends() {
        runtime().block_on(async {
            let b = Broadcaster::new();
            let mut changes = b.presence_changes();
            let woken = |changes: &mut crate::PresenceChanges| changes.changed().now_or_never();
            assert_eq!(woken(&mut changes), None, "nothing changed yet");

            let everything = b.subscribe(None).unwrap();
            assert_eq!(woken(&mut changes), None, "no topic: not in the index");
            let sub = Sub {
                selectors: Some(vec!["users/42".into()]),
                grants: vec![],
                resume_after: None,
            };
            let first = open(&b, &sub, None);
            let second = open(&b, &sub, None);
            assert_eq!(woken(&mut changes), Some(true), "two opened: one wake-up");
            assert_eq!(woken(&mut changes), None, "seen");
            assert_eq!(b.presence("users/42"), 2);

            drop(first);
            assert_eq!(woken(&mut changes), Some(true), "one ended");
            assert_eq!(b.presence("users/42"), 1);
            drop(everything);
            assert_eq!(woken(&mut changes), None);

            let waiting = tokio::spawn(async move { changes.changed().await });
            tokio::task::yield_now().await;
            b.shutdown();
            assert!(!waiting.await.unwrap(), "shutdown ends the waiting");
            assert!(!b.presence_changes().changed().await);
            drop(second);
        });
    }
}
