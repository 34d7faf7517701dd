//! An event of the application's own making, for code that has no handler to annotate: the
//! builder behind [`Broadcaster::publish_event`](crate::Broadcaster::publish_event).

use std::sync::Arc;

use serde::Serialize;

use crate::error::PublishError;
use crate::topic::Delivery;

/// An event built in code: its name, data, topics and audience, published with
/// [`Broadcaster::publish_event`](crate::Broadcaster::publish_event).
///
/// ```
/// use sse_core::{Broadcaster, Event};
///
/// let events = Broadcaster::new();
/// events.publish_event(
///     Event::new("order_shipped")
///         .json(&serde_json::json!({ "id": 7 }))
///         .topic("customers/42/orders/7")
///         .private(),
/// )?;
/// events.publish_event(Event::new("log").text("line one\nline two"))?;
/// # Ok::<(), sse_core::error::PublishError>(())
/// ```
///
/// Building never fails: a payload that does not serialize, or a name or topic that cannot
/// go on the wire, is reported by `publish_event`, which then publishes nothing.
#[derive(Debug)]
#[must_use = "an event does nothing until it is given to `Broadcaster::publish_event`"]
pub struct Event {
    name: String,
    data: Result<Data, serde_json::Error>,
    topics: Vec<String>,
    delivery: Delivery,
}

/// The event's data, serialized.
#[derive(Debug)]
pub(crate) enum Data {
    /// A JSON document (one line).
    Json(String),
    /// Text, sent as one `data:` line per line.
    Text(String),
}

impl Event {
    /// An event named `name` (no data yet: an empty `data:` line), on the topic `name` unless
    /// [`topic`](Event::topic) says otherwise.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data: Ok(Data::Text(String::new())),
            topics: Vec::new(),
            delivery: Delivery::default(),
        }
    }

    /// `payload` as JSON, serialized now, once for every subscriber.
    pub fn json<T: Serialize + ?Sized>(mut self, payload: &T) -> Self {
        self.data = serde_json::to_string(payload).map(Data::Json);
        self
    }

    /// Plain text: line breaks become several `data:` lines, which the browser joins back
    /// with `\n`.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.data = Ok(Data::Text(text.into()));
        self
    }

    /// Adds a topic (such as `users/42`); subscribers whose selectors match one of the
    /// event's topics get it, and so do those that chose no topic (unless it is private).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Adds several topics; see [`topic`](Event::topic).
    pub fn topics<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Only to subscribers authorized for one of its topics (see
    /// [`Authorize`](crate::Authorize)) that also selected it.
    pub fn private(mut self) -> Self {
        self.delivery = self.delivery.private();
        self
    }

    /// Not to streams opened with this client id (`X-SSE-Client-Id` or `?client_id=`): the
    /// client that made a change does not get its echo.
    pub fn except_client(mut self, client_id: impl Into<Arc<str>>) -> Self {
        self.delivery = self.delivery.except_client(client_id);
        self
    }

    /// The parts `publish_event` needs, checked: the name, the data and the route.
    pub(crate) fn into_parts(
        self,
    ) -> Result<(String, Data, Arc<crate::topic::Route>), PublishError> {
        crate::wire::validate_event_name(&self.name)?;
        let data = self.data.map_err(|source| PublishError::Serialize {
            event: self.name.clone(),
            source,
        })?;
        let delivery = if self.topics.is_empty() {
            self.delivery.topics([self.name.as_str()])
        } else {
            self.delivery.topics(self.topics)
        };
        Ok((self.name, data, delivery.route()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_goes_to_its_name_unless_topics_are_given() {
        let (_, _, route) = Event::new("tick").into_parts().unwrap();
        assert_eq!(&*route.topics, [Box::from("tick")]);
        let (_, _, route) = Event::new("tick")
            .topic("a/1")
            .topics(["b/2"])
            .private()
            .into_parts()
            .unwrap();
        assert_eq!(&*route.topics, [Box::from("a/1"), Box::from("b/2")]);
        assert!(route.private);
    }

    #[test]
    fn a_bad_name_topic_or_payload_is_reported_when_published() {
        assert!(matches!(
            Event::new("bad\nname").into_parts(),
            Err(PublishError::InvalidEventName { .. })
        ));
        assert!(matches!(
            Event::new("e").topic("").into_parts(),
            Err(PublishError::InvalidTopic { .. })
        ));
        let unserializable = std::collections::HashMap::from([((1, 2), 3)]);
        assert!(matches!(
            Event::new("e").json(&unserializable).into_parts(),
            Err(PublishError::Serialize { .. })
        ));
    }
}
