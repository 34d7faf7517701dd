//! A stream request, read once: its query and headers parsed, then its credentials checked,
//! then a place taken under the subscriber limits.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use tokio::time::Instant;

use super::client_addr::client_addr;
use super::refusal::Refusal;
use crate::auth::Grant;
use crate::emit::{parse_client_id, CLIENT_ID_HEADER};
use crate::error::AuthError;
use crate::fanout::{Admission, Hub, OverLimit, Refused};
use crate::topic::{merge, Filter, TopicSelector};
use crate::wire::LastEventId;

/// Most `/`-separated segments of all the distinct `topic` selectors of one stream request.
/// Each segment of a selector with `{name}` or `*` is a level of the subscription index: this
/// bounds what one stream's selectors cost the server (a few KiB), whatever its query.
pub(crate) const MAX_REQUEST_SEGMENTS: usize = 64;

/// What a stream request asks for.
pub(crate) struct StreamRequest {
    selectors: Vec<TopicSelector>,
    client_id: Option<Arc<str>>,
    /// Where to resume, parsed here once.
    pub(super) last_event_id: LastEventId,
}

/// What the credentials allow.
pub(super) struct Authorized {
    grant: Option<Grant>,
    pub(super) expires_at: Option<Instant>,
}

impl StreamRequest {
    /// Whether `req` resumes: a `Last-Event-ID` header or a `query_key` (`lastEventId`)
    /// query value that is not blank (read cheaply, before the request is parsed).
    pub(crate) fn resumes(req: &HttpRequest, query_key: &str) -> bool {
        let header = (req.headers().get("last-event-id"))
            .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
        header
            || (req.query_string().split('&'))
                .filter_map(|pair| pair.strip_prefix(query_key)?.strip_prefix('='))
                .any(|value| !value.is_empty())
    }

    /// Reads the query string (once) and the headers: `topic` selectors, the client id
    /// (`X-SSE-Client-Id` wins over `?client_id=`), and `Last-Event-ID` (the header wins over
    /// `?lastEventId=`: a browser updates it on every reconnect, while the query stays as it
    /// was when the page opened the stream).
    pub(super) fn parse(shared: &Hub, req: &HttpRequest) -> Result<Self, Refusal> {
        let config = shared.config();
        let bad = |message: String| Refusal::bad(shared, req, message);
        let query = req.query_string();
        if query.len() > config.max_query_len {
            return Err(Refusal::counted(
                shared,
                Refused::BadRequest,
                req,
                StatusCode::URI_TOO_LONG,
                format!(
                    "the query string is {} bytes; at most {} are accepted",
                    query.len(),
                    config.max_query_len
                ),
            ));
        }
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|err| bad(format!("unreadable query string: {err}")))?
            .into_inner();
        let mut selectors: Vec<TopicSelector> = Vec::new();
        let mut segments = 0;
        let mut client_id = None;
        let mut last_event_id = None;
        for (key, value) in pairs {
            match key.as_str() {
                "topic" => {
                    let selector = TopicSelector::parse(&value)
                        .map_err(|err| bad(format!("malformed topic selector: {err}")))?;
                    // A repeat selects nothing more: it costs nothing, and counts for nothing.
                    if selectors.contains(&selector) {
                        continue;
                    }
                    if selectors.len() == config.max_selectors {
                        return Err(bad(format!(
                            "too many `topic` parameters: at most {} are accepted",
                            config.max_selectors
                        )));
                    }
                    segments += selector.as_str().split('/').count();
                    if segments > MAX_REQUEST_SEGMENTS {
                        return Err(bad(format!(
                            "the `topic` selectors have too many segments: at most \
                             {MAX_REQUEST_SEGMENTS} in all are accepted"
                        )));
                    }
                    selectors.push(selector);
                }
                "client_id" => client_id = Some(value),
                "lastEventId" => last_event_id = Some(value),
                _ => {}
            }
        }
        let client_id = match req.headers().get(CLIENT_ID_HEADER) {
            Some(header) => Some(header.as_bytes()),
            None => client_id.as_deref().map(str::as_bytes),
        };
        let client_id = match client_id {
            None => None,
            Some(raw) => Some(parse_client_id(raw).map_err(|reason| bad(reason.to_owned()))?),
        };
        let header = req
            .headers()
            .get("last-event-id")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned());
        let last_event_id = LastEventId::parse(
            header
                .filter(|v| !v.is_empty())
                .or_else(|| last_event_id.filter(|v| !v.trim().is_empty()))
                .as_deref(),
        );
        Ok(Self {
            selectors,
            client_id,
            last_event_id,
        })
    }

    /// Checks the credentials against the selected topics: 401 without valid credentials
    /// where a private topic is selected, 403 for a private topic they do not cover.
    pub(super) fn authorize(&self, shared: &Hub, req: &HttpRequest) -> Result<Authorized, Refusal> {
        let config = shared.config();
        let unauthorized = |message: String| {
            Refusal::counted(
                shared,
                Refused::Unauthorized,
                req,
                StatusCode::UNAUTHORIZED,
                message,
            )
        };
        let forbidden = |message: String| {
            Refusal::counted(
                shared,
                Refused::Forbidden,
                req,
                StatusCode::FORBIDDEN,
                message,
            )
        };
        let grant = match &config.authorizer.0 {
            None => None,
            Some(authorizer) => match authorizer.authorize(req) {
                Ok(grant) => grant,
                Err(AuthError::Forbidden(message)) => return Err(forbidden(message)),
                Err(err) => return Err(unauthorized(err.to_string())),
            },
        };
        let private = self
            .selectors
            .iter()
            .filter(|s| config.private_topics.iter().any(|p| s.is_within(p)));
        for selector in private {
            match &grant {
                None => {
                    return Err(unauthorized(format!(
                        "topic `{selector}` is private: send credentials"
                    )))
                }
                Some(grant) if !grant.topics.iter().any(|g| selector.is_within(g)) => {
                    return Err(forbidden(format!(
                        "your credentials do not allow topic `{selector}`"
                    )))
                }
                Some(_) => {}
            }
        }
        let expires_at = match grant.as_ref().and_then(|g| g.expires_at) {
            None => None,
            Some(at) => match at.duration_since(SystemTime::now()) {
                Ok(left) => Some(Instant::now() + left),
                Err(_) => return Err(unauthorized("the credentials have expired".to_owned())),
            },
        };
        Ok(Authorized { grant, expires_at })
    }

    /// Takes a place under the subscriber limits (503 past them).
    pub(crate) fn admit(shared: &Hub, req: &HttpRequest) -> Result<Admission, Refusal> {
        let config = shared.config();
        shared
            .admit(client_addr(
                req,
                &config.trusted_proxies,
                config.forwarded_header,
            ))
            .map_err(|which| {
                let message = match which {
                    OverLimit::Total => "too many open event streams; try again later",
                    OverLimit::PerIp => "too many open event streams from your address",
                };
                Refusal::counted(
                    shared,
                    Refused::OverLimit,
                    req,
                    StatusCode::SERVICE_UNAVAILABLE,
                    message.to_owned(),
                )
            })
    }

    /// The subscriber's filter: what it selected (merged), what it may see, who it is.
    pub(super) fn filter(self, authorized: Authorized) -> Filter {
        Filter {
            selectors: (!self.selectors.is_empty()).then(|| merge(self.selectors).into()),
            grants: authorized
                .grant
                .map(|g| g.topics.into())
                .unwrap_or_default(),
            client_id: self.client_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    use crate::Broadcaster;

    #[test]
    fn a_request_resumes_with_a_non_blank_header_or_query_value() {
        let resumes =
            |req: TestRequest| super::StreamRequest::resumes(&req.to_http_request(), "lastEventId");
        assert!(resumes(
            TestRequest::get().insert_header(("last-event-id", "a-1"))
        ));
        assert!(!resumes(
            TestRequest::get().insert_header(("last-event-id", " "))
        ));
        assert!(resumes(
            TestRequest::get().uri("/e?topic=a&lastEventId=a-1")
        ));
        assert!(!resumes(TestRequest::get().uri("/e?lastEventId=&topic=a")));
        assert!(!resumes(TestRequest::get().uri("/e?xlastEventId=a-1")));
        assert!(!resumes(TestRequest::get().uri("/e?topic=a")));
    }

    /// `s` percent-encoded, every byte: any text can reach the query string this way.
    fn encode(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    /// A selector such as `k0` + 1005 `/` + `*` once fit in 1024 bytes, and each of its
    /// segments became a level of the subscription index (about 512 bytes): four of them in a
    /// 4 KiB query cost the server 2 MiB per anonymous stream.
    #[tokio::test]
    async fn a_stream_request_adds_a_bounded_number_of_index_levels() {
        let events = Broadcaster::new();
        let query = |selectors: Vec<String>| {
            let query: Vec<String> = selectors.iter().map(|s| format!("topic={s}")).collect();
            let uri = format!("/events?{}", query.join("&"));
            events.respond(&TestRequest::with_uri(&uri).to_http_request())
        };
        let deep = query(
            (0..4)
                .map(|k| format!("k{k}{}*", "/".repeat(1005)))
                .collect(),
        );
        assert_eq!(deep.status(), StatusCode::BAD_REQUEST, "empty segments");
        // The most one request may select: distinct patterns, 16 segments each, 64 in all.
        let widest = |n: usize| -> Vec<String> {
            (0..n)
                .map(|k| format!("w{k}/{}", vec!["{x}"; 15].join("/")))
                .collect()
        };
        let most = query(widest(4));
        assert_eq!(most.status(), StatusCode::OK);
        assert_eq!(query(widest(5)).status(), StatusCode::BAD_REQUEST);
        let levels = events.shared.index_levels();
        assert!(levels <= super::MAX_REQUEST_SEGMENTS, "{levels} levels");
        drop((deep, most));
    }

    #[tokio::test]
    async fn repeated_selectors_are_one() {
        let events = Broadcaster::builder().max_selectors(3).build();
        let uri = format!("/events?{}", vec!["topic=*"; 40].join("&"));
        let stream = events.respond(&TestRequest::with_uri(&uri).to_http_request());
        assert_eq!(stream.status(), StatusCode::OK);
        assert_eq!(events.shared.index_levels(), 0);
        drop(stream);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever a client puts in the query string and headers of a stream request, it
        /// gets a stream or a precise refusal (400 or 414), never a panic or a 500.
        #[test]
        fn any_stream_request_gets_a_stream_or_a_precise_refusal(
            pairs in prop::collection::vec(
                (prop::sample::select(vec!["topic", "client_id", "lastEventId", "x", ""]),
                 "\\PC{0,24}"),
                0..6),
            raw in "[a-zA-Z0-9=&%_.~-]{0,40}",
            last_event_id in prop::option::of("[ -~]{0,30}"),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            rt.block_on(async {
                let events = Broadcaster::builder().max_selectors(3).max_query_len(200).build();
                events.publish_event(crate::Event::new("e").json(&1).topic("users/1")).unwrap();
                let mut query: Vec<String> =
                    pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
                query.push(raw.clone());
                let mut req = TestRequest::with_uri(&format!("/events?{}", query.join("&")));
                if let Some(id) = &last_event_id {
                    req = req.insert_header(("last-event-id", id.as_str()));
                }
                let status = events.respond(&req.to_http_request()).status();
                prop_assert!(
                    [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::URI_TOO_LONG]
                        .contains(&status),
                    "{status}"
                );
                Ok(())
            })?;
        }
    }
}
