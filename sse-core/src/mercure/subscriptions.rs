//! The subscriptions API ([`Mercure::subscriptions`](super::Mercure::subscriptions)): the
//! subscriptions this instance serves, as JSON-LD at
//! `/.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`, and an update on each
//! subscription's own topic when it becomes active or inactive.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::Value;

use super::publish::Refused;
use super::topic::TopicMap;
use super::{jwt, publish, Mercure};
use crate::fanout::Broadcaster;
use crate::topic::Delivery;

/// Where the subscriptions API is served, and the prefix of the subscription events' topics.
pub(super) const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// The JSON-LD context of every document of the API.
const CONTEXT: &str = "https://mercure.rocks/";

/// A topic or subscriber in a subscription's IRI: RFC 3986's unreserved characters as they
/// are, every other byte percent-encoded (so a `/` never splits a segment).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The subscribers of this instance, in the order they connected. Shared by every worker's
/// copy of the hub.
#[derive(Debug, Default)]
pub(super) struct Registry {
    subscribers: Mutex<Subscribers>,
}

#[derive(Debug, Default)]
struct Subscribers {
    next: u64,
    by_arrival: BTreeMap<u64, Arc<Subscriber>>,
}

/// One Mercure subscriber: its id, the selectors it subscribed with (each a subscription),
/// and the `mercure.payload` of its token.
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) id: String,
    pub(super) topics: Vec<String>,
    pub(super) payload: Option<Value>,
}

/// A subscriber's place in the registry: dropped with its stream, it leaves the registry and
/// announces its subscriptions inactive.
#[derive(Debug)]
pub(super) struct Registration {
    registry: Arc<Registry>,
    key: u64,
    subscriber: Arc<Subscriber>,
    events: Broadcaster,
    topics: TopicMap,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        // A panic elsewhere while holding the lock leaves a map that is still whole.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `subscriber` and announces its subscriptions active.
    pub(super) fn register(
        self: &Arc<Self>,
        events: &Broadcaster,
        topics: &TopicMap,
        subscriber: Subscriber,
    ) -> Registration {
        let subscriber = Arc::new(subscriber);
        let key = {
            let mut subscribers = self.lock();
            let key = subscribers.next;
            subscribers.next += 1;
            subscribers.by_arrival.insert(key, subscriber.clone());
            key
        };
        announce(events, topics, &subscriber, true);
        Registration {
            registry: self.clone(),
            key,
            subscriber,
            events: events.clone(),
            topics: topics.clone(),
        }
    }

    fn snapshot(&self) -> Vec<Arc<Subscriber>> {
        self.lock().by_arrival.values().cloned().collect()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().by_arrival.remove(&self.key);
        announce(&self.events, &self.topics, &self.subscriber, false);
    }
}

/// One subscription as JSON-LD: in a collection (no `@context`, no `lastEventID`), alone, or
/// as the data of a subscription event (`@context`, no `lastEventID`).
#[derive(Serialize)]
struct Subscription<'a> {
    #[serde(rename = "@context", skip_serializing_if = "Option::is_none")]
    context: Option<&'static str>,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    topic: &'a str,
    subscriber: &'a str,
    active: bool,
    #[serde(rename = "lastEventID", skip_serializing_if = "Option::is_none")]
    last_event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a Value>,
}

impl<'a> Subscription<'a> {
    fn new(subscriber: &'a Subscriber, topic: &'a str, active: bool) -> Self {
        Self {
            context: None,
            id: subscription_id(topic, &subscriber.id),
            kind: "Subscription",
            topic,
            subscriber: &subscriber.id,
            active,
            last_event_id: None,
            payload: subscriber.payload.as_ref(),
        }
    }
}

#[derive(Serialize)]
struct Collection<'a> {
    #[serde(rename = "@context")]
    context: &'static str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "lastEventID")]
    last_event_id: &'a str,
    subscriptions: Vec<Subscription<'a>>,
}

/// The IRI of `subscriber`'s subscription to `topic` (relative to the hub's origin), which is
/// also the topic of its events.
pub(super) fn subscription_id(topic: &str, subscriber: &str) -> String {
    format!(
        "{SUBSCRIPTIONS_PATH}/{}/{}",
        utf8_percent_encode(topic, SEGMENT),
        utf8_percent_encode(subscriber, SEGMENT)
    )
}

/// Publishes one private update per subscription of `subscriber`, on the subscription's IRI,
/// with the subscription as its data: it reaches the subscribers that selected that IRI and
/// whose `mercure.subscribe` claim allows it.
fn announce(events: &Broadcaster, topics: &TopicMap, subscriber: &Subscriber, active: bool) {
    for topic in &subscriber.topics {
        let mut subscription = Subscription::new(subscriber, topic, active);
        subscription.context = Some(CONTEXT);
        let published = topics
            .topic(&subscription.id)
            .map_err(|err| err.to_string())
            .and_then(|mapped| {
                Delivery::to([mapped])
                    .private()
                    .route()
                    .map_err(|err| err.to_string())
            })
            .and_then(|route| {
                let data = serde_json::to_string(&subscription).map_err(|err| err.to_string())?;
                let id = publish::new_urn_uuid().ok_or("no randomness for an update id")?;
                (events.publish_with_wire_id(id.into(), "message", &data, None, route))
                    .map_err(|err| err.to_string())
            });
        if let Err(reason) = published {
            tracing::debug!(subscription = %subscription.id, active, %reason,
                "mercure subscription event not published");
        }
    }
}

/// Whether `topic` is one of the hub's own subscription topics, which no publisher may use:
/// `/.well-known/mercure/subscriptions` or under it, relative or on any origin, or a topic
/// the mapping makes one of them.
pub(super) fn is_reserved(topic: &str, topics: &TopicMap) -> bool {
    let under = |path: &str| {
        path.strip_prefix(SUBSCRIPTIONS_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let path = match topic.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
        None => topic,
    };
    if under(topic) || under(path) {
        return true;
    }
    match (topics.topic(topic), topics.topic(SUBSCRIPTIONS_PATH)) {
        (Ok(mapped), Ok(reserved)) => mapped
            .strip_prefix(&reserved)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        _ => false,
    }
}

/// What a request of the API asks for.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    All,
    Topic(String),
    One { topic: String, subscriber: String },
}

/// `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`: the collection, or one
/// subscription, as JSON-LD; or a refusal.
pub(super) fn respond(events: &Broadcaster, hub: &Mercure, req: &HttpRequest) -> HttpResponse {
    match answer(events, hub, req) {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/ld+json")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(body),
        Err(refused) => refused.into_response("subscriptions"),
    }
}

fn answer(events: &Broadcaster, hub: &Mercure, req: &HttpRequest) -> Result<String, Refused> {
    // The path as sent: its segments are percent-encoded and decoded here, once.
    let path = req.path();
    let wanted = parse_path(path)?;
    authorize(hub, req, path)?;
    let last_event_id = events.shared.lock().last_wire_id();
    let subscribers = hub.registry.snapshot();
    let subscriptions = subscribers.iter().flat_map(|subscriber| {
        (subscriber.topics.iter()).map(move |topic| Subscription::new(subscriber, topic, true))
    });
    let json = match &wanted {
        Wanted::All | Wanted::Topic(_) => {
            let subscriptions = subscriptions
                .filter(|s| match &wanted {
                    Wanted::Topic(topic) => s.topic == topic,
                    _ => true,
                })
                .collect();
            serde_json::to_string(&Collection {
                context: CONTEXT,
                id: path,
                kind: "Subscriptions",
                last_event_id: &last_event_id,
                subscriptions,
            })
        }
        Wanted::One { topic, subscriber } => {
            let mut one = (subscriptions.into_iter())
                .find(|s| s.topic == topic && s.subscriber == subscriber)
                .ok_or_else(|| {
                    Refused(
                        StatusCode::NOT_FOUND,
                        format!("no active subscription of {subscriber:?} to {topic:?}"),
                    )
                })?;
            one.context = Some(CONTEXT);
            one.last_event_id = Some(&last_event_id);
            serde_json::to_string(&one)
        }
    };
    json.map_err(|err| Refused(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))
}

/// Reads `/.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`.
fn parse_path(path: &str) -> Result<Wanted, Refused> {
    let not_found = || {
        Refused(
            StatusCode::NOT_FOUND,
            format!(
                "the subscriptions API serves {SUBSCRIPTIONS_PATH}, \
                 {SUBSCRIPTIONS_PATH}/{{topic}} and {SUBSCRIPTIONS_PATH}/{{topic}}/{{subscriber}}"
            ),
        )
    };
    let rest = path
        .strip_prefix(SUBSCRIPTIONS_PATH)
        .ok_or_else(not_found)?;
    if rest.is_empty() {
        return Ok(Wanted::All);
    }
    let segments: Vec<&str> = rest
        .strip_prefix('/')
        .ok_or_else(not_found)?
        .split('/')
        .collect();
    match segments.as_slice() {
        [topic] => Ok(Wanted::Topic(decode(topic, "topic")?)),
        [topic, subscriber] => Ok(Wanted::One {
            topic: decode(topic, "topic")?,
            subscriber: decode(subscriber, "subscriber")?,
        }),
        _ => Err(not_found()),
    }
}

/// One percent-encoded segment, decoded; 400 when empty, malformed or not UTF-8.
fn decode(segment: &str, what: &str) -> Result<String, Refused> {
    let bad = |why: &str| Refused(StatusCode::BAD_REQUEST, format!("the {what} segment {why}"));
    if segment.is_empty() {
        return Err(bad("is empty"));
    }
    let bytes = segment.as_bytes();
    let malformed = (bytes.iter().enumerate()).any(|(at, &b)| {
        b == b'%'
            && !(bytes.get(at + 1..at + 3)).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(bad("has a `%` not followed by two hexadecimal digits"));
    }
    percent_decode_str(segment)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| bad("is not UTF-8 once decoded"))
}

/// Whether the request's subscriber token covers `path` (the URL of the request, as sent)
/// with its `mercure.subscribe` selectors: 401 without a valid token, 403 when it does not.
fn authorize(hub: &Mercure, req: &HttpRequest, path: &str) -> Result<(), Refused> {
    let settings = &hub.settings;
    let unauthorized = |message: String| Refused(StatusCode::UNAUTHORIZED, message);
    let forbidden = |message: String| Refused(StatusCode::FORBIDDEN, message);
    let query_token = (query_pairs(req).into_iter())
        .find(|(key, _)| key == "authorization")
        .map(|(_, value)| value);
    let (token, _) = jwt::token(req, query_token.as_deref())
        .map_err(unauthorized)?
        .ok_or_else(|| unauthorized("the subscriptions API needs a subscriber token".to_owned()))?;
    let key = (settings.subscriber_key.as_ref())
        .ok_or_else(|| unauthorized("this hub has no subscriber key".to_owned()))?;
    let claim = key.verify(&token).map_err(unauthorized)?.claim;
    let grants = (claim.subscribe.unwrap_or_default().iter())
        .map(|s| settings.topics.selectors(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| forbidden(format!("mercure.subscribe claim: {err}")))?
        .concat();
    let topic = (settings.topics.topic(path)).map_err(|err| {
        Refused(
            StatusCode::BAD_REQUEST,
            format!("the URL cannot be a topic: {err}"),
        )
    })?;
    if grants.iter().any(|grant| grant.matches(&topic)) {
        Ok(())
    } else {
        Err(forbidden(format!(
            "the token's `mercure.subscribe` claim does not cover {path}"
        )))
    }
}

/// The query's pairs, or none when it cannot be read (then only the header and the cookie
/// carry a token).
fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_id_encodes_its_topic_and_subscriber_as_segments() {
        assert_eq!(
            subscription_id("https://example.com/books/{id}", "urn:uuid:1-2"),
            "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/urn%3Auuid%3A1-2"
        );
    }

    #[test]
    fn paths_are_read_and_decoded() {
        let path = subscription_id("a b/é", "urn:uuid:x");
        assert_eq!(
            parse_path(&path).ok(),
            Some(Wanted::One {
                topic: "a b/é".to_owned(),
                subscriber: "urn:uuid:x".to_owned()
            })
        );
        assert_eq!(parse_path(SUBSCRIPTIONS_PATH).ok(), Some(Wanted::All));
        assert_eq!(
            parse_path(&format!("{SUBSCRIPTIONS_PATH}/t%2F1")).ok(),
            Some(Wanted::Topic("t/1".to_owned()))
        );
        for (bad, status, says) in [
            ("x", 404, "serves"),
            ("/a/b/c", 404, "serves"),
            ("/", 400, "empty"),
            ("/a%zz", 400, "hexadecimal"),
            ("/a%2", 400, "hexadecimal"),
            ("/%FF", 400, "UTF-8"),
            ("/a/", 400, "subscriber segment is empty"),
        ] {
            let Err(Refused(got, message)) = parse_path(&format!("{SUBSCRIPTIONS_PATH}{bad}"))
            else {
                panic!("{bad} accepted");
            };
            assert_eq!(got.as_u16(), status, "{bad}");
            assert!(message.contains(says), "{bad}: {message}");
        }
    }

    #[test]
    fn the_subscription_topics_are_reserved_in_every_form() {
        let plain = TopicMap::default();
        let based = TopicMap::new(Some("urn:app:".to_owned()));
        for topic in [
            "/.well-known/mercure/subscriptions",
            "/.well-known/mercure/subscriptions/a/b",
            "https://example.com/.well-known/mercure/subscriptions/a/b",
        ] {
            assert!(is_reserved(topic, &plain), "{topic}");
        }
        assert!(is_reserved(
            "urn:app:/.well-known/mercure/subscriptions/a",
            &based
        ));
        for topic in [
            "/.well-known/mercure",
            "/.well-known/mercure/subscriptionsX",
            "https://example.com/books/1",
            "books/.well-known/mercure/subscriptions",
        ] {
            assert!(!is_reserved(topic, &plain), "{topic}");
        }
    }
}
