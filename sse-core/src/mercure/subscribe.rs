//! `GET /.well-known/mercure`: a Mercure subscriber's stream, on the broadcaster's own
//! subscription index and history.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_core::Stream;
use tokio::time::Instant;

use super::subscriptions::{Registration, Subscriber};
use super::{jwt, publish, Mercure};
use crate::fanout::{Broadcaster, EventStream, Hub, Refused};
use crate::http::refusal::Refusal;
use crate::http::request::{StreamRequest, MAX_REQUEST_SEGMENTS};
use crate::http::service::stream_response;
use crate::topic::{merge, Filter, TopicSelector};
use crate::wire::LastEventId;

/// The subscriber's stream, with the `Last-Event-ID` header Mercure defines (the id of the
/// last event at the time of subscribing), or a refusal. With the subscriptions API, the
/// subscriber is registered while its stream lasts.
pub(super) async fn respond(
    events: &Broadcaster,
    hub: &Mercure,
    req: &HttpRequest,
) -> HttpResponse {
    match open(events, hub, req).await {
        Ok(Opened {
            stream,
            last,
            topics,
            payload,
        }) => {
            let registration = hub.settings.subscriptions.then(|| {
                let id = publish::new_urn_uuid().unwrap_or_else(|| {
                    // Without randomness, still unique within this instance (Relaxed: the
                    // counter orders nothing else, only its values must differ).
                    static NEXT: AtomicU64 = AtomicU64::new(0);
                    format!("urn:sse-core:{}", NEXT.fetch_add(1, Ordering::Relaxed))
                });
                let subscriber = Subscriber {
                    id,
                    topics,
                    payload,
                };
                (hub.registry).register(events, &hub.settings.topics, subscriber)
            });
            stream_response()
                .insert_header(("last-event-id", last))
                .streaming(Registered {
                    stream,
                    _registration: registration,
                })
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// A subscriber's open stream and what the subscriptions API says of it.
struct Opened {
    stream: EventStream,
    /// The id of the last event when it opened.
    last: String,
    /// The selectors as the subscriber sent them, without repeats.
    topics: Vec<String>,
    /// The `mercure.payload` of its token.
    payload: Option<serde_json::Value>,
}

/// The stream, then its registration: dropped in that order, so that the subscriber has left
/// the index when its subscriptions are announced inactive.
struct Registered {
    stream: EventStream,
    _registration: Option<Registration>,
}

impl Stream for Registered {
    type Item = <EventStream as Stream>::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().stream).poll_next(cx)
    }
}

async fn open(events: &Broadcaster, hub: &Mercure, req: &HttpRequest) -> Result<Opened, Refusal> {
    let shared = &events.shared;
    let config = shared.config();
    let bad = |message: String| Refusal::bad(shared, req, message);
    let unauthorized = |message: String| {
        Refusal::counted(
            shared,
            Refused::Unauthorized,
            req,
            StatusCode::UNAUTHORIZED,
            message,
        )
    };
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
    let mut topics: Vec<String> = Vec::new();
    let mut segments = 0;
    let mut last_event_id = None;
    let mut query_token = None;
    for (key, value) in pairs {
        match key.as_str() {
            "topic" => {
                let shapes = (hub.settings.topics.selectors(&value))
                    .map_err(|err| bad(format!("malformed topic selector: {err}")))?;
                let shapes: Vec<TopicSelector> = (shapes.into_iter())
                    .filter(|s| !selectors.contains(s))
                    .collect();
                if shapes.is_empty() {
                    continue;
                }
                if selectors.len() + shapes.len() > config.max_selectors {
                    return Err(bad(format!(
                        "too many `topic` parameters: at most {} topic shapes are accepted",
                        config.max_selectors
                    )));
                }
                segments += (shapes.iter())
                    .map(|s| s.as_str().split('/').count())
                    .sum::<usize>();
                if segments > MAX_REQUEST_SEGMENTS {
                    return Err(bad(format!(
                        "the `topic` selectors have too many segments: at most \
                         {MAX_REQUEST_SEGMENTS} in all are accepted"
                    )));
                }
                selectors.extend(shapes);
                topics.push(value);
            }
            // 0.x hubs read `lastEventID`; older clients send `Last-Event-ID`.
            "lastEventID" | "Last-Event-ID" => last_event_id = Some(value),
            "authorization" => query_token = Some(value),
            _ => {}
        }
    }
    if selectors.is_empty() {
        return Err(bad(
            "missing `topic` parameter: a Mercure subscriber selects at least one topic".to_owned(),
        ));
    }
    let (grants, expires_at, payload) =
        match jwt::token(req, query_token.as_deref()).map_err(unauthorized)? {
            None if hub.settings.anonymous => (Vec::new(), None, None),
            None => {
                return Err(unauthorized(
                    "send a subscriber token: this hub has no anonymous subscribers".to_owned(),
                ))
            }
            Some((token, _)) => {
                let key = (hub.settings.subscriber_key.as_ref())
                    .ok_or_else(|| unauthorized("this hub has no subscriber key".to_owned()))?;
                let verified = key.verify(&token).map_err(unauthorized)?;
                let grants = (verified
                    .claim
                    .subscribe
                    .as_deref()
                    .unwrap_or_default()
                    .iter())
                .map(|s| hub.settings.topics.selectors(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| unauthorized(format!("mercure.subscribe claim: {err}")))?
                .concat();
                let expires_at = match verified.expires_at {
                    None => None,
                    Some(at) => match at.duration_since(SystemTime::now()) {
                        Ok(left) => Some(Instant::now() + left),
                        Err(_) => return Err(unauthorized("the token has expired".to_owned())),
                    },
                };
                (grants, expires_at, verified.claim.payload)
            }
        };
    let admission = StreamRequest::admit(shared, req)?;
    // The header wins: a browser updates it on every reconnect, the query stays as it was.
    let header = req
        .headers()
        .get("last-event-id")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned())
        .filter(|v| !v.is_empty());
    // After the token and the limits: only an admitted subscriber makes the store look.
    let resume = resume_point(shared, header.or(last_event_id).as_deref()).await;
    let last = shared.lock().last_wire_id();
    let filter = Filter {
        selectors: Some(merge(selectors).into()),
        grants: grants.into(),
        client_id: None,
    };
    let stream = EventStream::open(
        shared.clone(),
        resume,
        filter,
        crate::wire::gzip::Coding::Identity,
        Some(admission),
        expires_at,
    )
    .ok_or_else(Refusal::shutting_down)?;
    Ok(Opened {
        stream,
        last,
        topics,
        payload,
    })
}

/// Where a Mercure `Last-Event-ID` resumes: `earliest`, an id a publisher chose (looked up in
/// the local history, newest first, then in the engine when it can look), or one of
/// sse-core's own ids.
async fn resume_point(shared: &Hub, raw: Option<&str>) -> LastEventId {
    let raw = match raw.map(str::trim) {
        None | Some("") => return LastEventId::None,
        Some(raw) => raw,
    };
    if raw == "earliest" {
        return LastEventId::Oldest;
    }
    let local = shared.lock().find_wire_id(raw);
    if let Some(id) = local {
        return LastEventId::After(id);
    }
    let ours = LastEventId::parse(Some(raw));
    if ours != LastEventId::Malformed {
        return ours;
    }
    // A publisher's id older than the history (as after a restart): the SQL log finds it.
    if let Some(found) = shared.log().and_then(|log| log.find_wire_id(raw)) {
        if let Some(id) = found.await {
            return LastEventId::After(id);
        }
    }
    LastEventId::Malformed
}
