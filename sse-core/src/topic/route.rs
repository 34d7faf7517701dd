//! Which events one subscriber gets: decided on an event's route, before any bytes are
//! touched, so frames stay encoded once for everyone.

use std::sync::Arc;

use super::selector::{validate_topic, TopicSelector};
use crate::error::PublishError;

/// Who an event goes to: its topics, whether it is private, and a client that should not get
/// the echo of its own change. Checked once, into a [`Route`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub(crate) struct Delivery {
    topics: Vec<String>,
    private: bool,
    except: Option<Arc<str>>,
}

impl Delivery {
    /// Public delivery to subscribers of any of `topics`.
    pub(crate) fn to<S: AsRef<str>>(topics: impl IntoIterator<Item = S>) -> Self {
        Self::default().topics(topics)
    }

    /// The same audience, on `topics` instead.
    pub(crate) fn topics<S: AsRef<str>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.topics = topics.into_iter().map(|t| t.as_ref().to_owned()).collect();
        self
    }

    /// Only to subscribers authorized for one of the topics (see
    /// [`Authorize`](crate::Authorize)) that also selected it.
    pub(crate) fn private(mut self) -> Self {
        self.private = true;
        self
    }

    /// Not to streams opened with this client id (`X-SSE-Client-Id` or `?client_id=`).
    pub(crate) fn except_client(mut self, client_id: impl Into<Arc<str>>) -> Self {
        self.except = Some(client_id.into());
        self
    }

    pub(crate) fn route(&self) -> Result<Arc<Route>, PublishError> {
        if self.topics.is_empty() {
            return Err(PublishError::InvalidTopic {
                topic: String::new(),
                reason: "an event needs at least one topic".to_owned(),
            });
        }
        for topic in &self.topics {
            validate_topic(topic).map_err(|err| PublishError::InvalidTopic {
                topic: topic.clone(),
                reason: err.to_string(),
            })?;
        }
        Ok(Arc::new(Route {
            topics: self.topics.iter().map(|t| t.as_str().into()).collect(),
            private: self.private,
            origin: self.except.clone(),
            everyone: false,
        }))
    }
}

/// Where an event goes; shared by the frame, its history entry and every subscriber.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) topics: Box<[Box<str>]>,
    pub(crate) private: bool,
    /// The client whose request caused the event, when it asked not to get the echo.
    pub(crate) origin: Option<Arc<str>>,
    /// For every subscriber, whatever it selected: a reset.
    pub(crate) everyone: bool,
}

impl Route {
    /// The route of a reset event published through the shared store.
    pub(crate) fn everyone() -> Self {
        Self {
            topics: Box::new([]),
            private: false,
            origin: None,
            everyone: true,
        }
    }
}

/// One subscriber's choice of events and what it may see.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    /// `None`: every public event.
    pub(crate) selectors: Option<Box<[TopicSelector]>>,
    /// Private topics the subscriber is authorized for.
    pub(crate) grants: Box<[TopicSelector]>,
    pub(crate) client_id: Option<Arc<str>>,
}

impl Filter {
    /// Mercure's rule: a private event is delivered when one of its topics is both selected
    /// and authorized.
    pub(crate) fn wants(&self, route: &Route) -> bool {
        if route.everyone {
            return true;
        }
        if let (Some(me), Some(origin)) = (&self.client_id, &route.origin) {
            if me == origin {
                return false;
            }
        }
        let Some(selectors) = &self.selectors else {
            return !route.private;
        };
        route.topics.iter().any(|topic| {
            selectors.iter().any(|s| s.matches(topic))
                && (!route.private || self.grants.iter().any(|g| g.matches(topic)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(topics: &[&str], private: bool, origin: Option<&str>) -> Route {
        Route {
            topics: topics.iter().map(|t| (*t).into()).collect(),
            private,
            origin: origin.map(Arc::from),
            everyone: false,
        }
    }

    fn sels(s: &[&str]) -> Box<[TopicSelector]> {
        s.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn public_private_and_echo() {
        let all = Filter::default();
        assert!(all.wants(&route(&["a"], false, None)));
        assert!(!all.wants(&route(&["a"], true, None)));

        let f = Filter {
            selectors: Some(sels(&["users/*"])),
            grants: sels(&["users/1/private"]),
            client_id: Some("me".into()),
        };
        assert!(f.wants(&route(&["users/2"], false, None)));
        assert!(!f.wants(&route(&["orders/2"], false, None)));
        assert!(f.wants(&route(&["users/1/private"], true, None)));
        assert!(!f.wants(&route(&["users/2/private"], true, None)));
        // Authorized for one topic, but that topic is not selected.
        let g = Filter {
            selectors: Some(sels(&["users/2/*"])),
            grants: sels(&["users/1/private"]),
            client_id: None,
        };
        assert!(!g.wants(&route(&["users/2/private", "users/1/private"], true, None)));
        assert!(!f.wants(&route(&["users/2"], false, Some("me"))));
        assert!(f.wants(&route(&["users/2"], false, Some("other"))));
    }
}
