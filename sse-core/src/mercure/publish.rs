//! `POST /.well-known/mercure`: a publisher's update, checked whole before anything is
//! published, then numbered and encoded once like every other event.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::jwt::{self, Source};
use super::subscriptions::is_reserved;
use super::Mercure;
use crate::error::PublishError;
use crate::fanout::Broadcaster;
use crate::topic::Delivery;

/// An update, read from the form.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Update {
    pub(crate) topics: Vec<String>,
    pub(crate) data: String,
    pub(crate) private: bool,
    pub(crate) id: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) retry: Option<u64>,
}

/// Why a request to the hub (a publish, a read of the subscriptions API) was refused: the
/// status and a reason for the client.
#[derive(Debug)]
pub(crate) struct Refused(pub(super) StatusCode, pub(super) String);

impl Refused {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    /// The answer, logged at debug level as a refused `request` (e.g. `"publish"`).
    pub(super) fn into_response(self, request: &'static str) -> HttpResponse {
        tracing::debug!(request, status = self.0.as_u16(), message = %self.1,
            "mercure request refused");
        let mut response = HttpResponse::build(self.0);
        if self.0 == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.1)
    }
}

/// Handles one publish: 200 `text/plain` with the update's id, or a refusal (nothing is
/// published then).
pub(super) async fn handle(
    events: Broadcaster,
    hub: Arc<Mercure>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match publish(&events, &hub, &req, payload).await {
        Ok(id) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(id),
        Err(refused) => refused.into_response("publish"),
    }
}

async fn publish(
    events: &Broadcaster,
    hub: &Mercure,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<String, Refused> {
    let settings = &hub.settings;
    let unauthorized = |message: String| Refused(StatusCode::UNAUTHORIZED, message);
    let forbidden = |message: String| Refused(StatusCode::FORBIDDEN, message);
    let (token, source) = jwt::token(req, None)
        .map_err(unauthorized)?
        .ok_or_else(|| unauthorized("publishing needs a publisher token".to_owned()))?;
    if source == Source::Cookie && !origin_allowed(req, &settings.publish_origins) {
        return Err(forbidden(
            "a token from a cookie publishes only from an allowed origin".to_owned(),
        ));
    }
    let key = (settings.publisher_key.as_ref())
        .ok_or_else(|| unauthorized("this hub has no publisher key".to_owned()))?;
    let claim = key.verify(&token).map_err(unauthorized)?.claim;
    let Some(allowed) = claim.publish else {
        return Err(forbidden(
            "the token has no `mercure.publish` claim".to_owned(),
        ));
    };
    let allowed = (allowed.iter())
        .map(|s| settings.topics.selectors(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| forbidden(format!("mercure.publish claim: {err}")))?
        .concat();

    content_type_is_form(req)?;
    let body = read_limited(payload, req, settings.max_update_bytes).await?;
    let update = parse_form(&body)?;
    if let Some(topic) = (update.topics.iter()).find(|t| is_reserved(t, &settings.topics)) {
        return Err(forbidden(format!(
            "topic {topic:?} is the hub's own: only the hub publishes subscription events"
        )));
    }
    let topics = (update.topics.iter())
        .map(|t| settings.topics.topic(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Refused::bad(format!("invalid topic: {err}")))?;
    if let Some(topic) = (update.topics.iter().zip(&topics))
        .find(|(_, mapped)| !allowed.iter().any(|s| s.matches(mapped)))
        .map(|(topic, _)| topic)
    {
        return Err(forbidden(format!(
            "the token's `mercure.publish` claim does not allow topic {topic:?}"
        )));
    }
    let id: Arc<str> = match update.id {
        Some(id) => id.into(),
        None => new_urn_uuid()
            .ok_or_else(|| {
                Refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no randomness for an update id".to_owned(),
                )
            })?
            .into(),
    };
    let mut delivery = Delivery::to(&topics);
    if update.private {
        delivery = delivery.private();
    }
    let route = delivery
        .route()
        .map_err(|err| Refused::bad(err.to_string()))?;
    let name = update.kind.as_deref().unwrap_or("message");
    match events.publish_with_wire_id(id.clone(), name, &update.data, update.retry, route) {
        Ok(_) => Ok(id.to_string()),
        Err(PublishError::Closed) => Err(Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub is shutting down".to_owned(),
        )),
        Err(err) => Err(Refused::bad(err.to_string())),
    }
}

fn origin_allowed(req: &HttpRequest, origins: &[String]) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.as_bytes();
    origins
        .iter()
        .any(|o| o == "*" || o.as_bytes().eq_ignore_ascii_case(origin))
}

/// Whether the body is a form: 400 for any other media type.
fn content_type_is_form(req: &HttpRequest) -> Result<(), Refused> {
    let media = (req.headers().get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match media.as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(()),
        other => Err(Refused::bad(format!(
            "the body must be `application/x-www-form-urlencoded`, not {}",
            other.unwrap_or("without a Content-Type")
        ))),
    }
}

/// The body, up to `limit` bytes: 413 past it, before reading more than that.
async fn read_limited(
    mut payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<web::BytesMut, Refused> {
    let too_large = || {
        Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the update is larger than {limit} bytes"),
        )
    };
    let declared = (req.headers().get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| Refused::bad(format!("unreadable body: {err}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the form's fields (the first `topic` is the canonical one; a repeated single field
/// keeps its last value, as the reference hub does).
pub(crate) fn parse_form(body: &[u8]) -> Result<Update, Refused> {
    std::str::from_utf8(body).map_err(|_| Refused::bad("the form body is not UTF-8".to_owned()))?;
    let mut update = Update::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        match &*key {
            "topic" => update.topics.push(value.into_owned()),
            "data" => update.data = value.into_owned(),
            "private" => update.private = true,
            "id" if value.is_empty() => update.id = None,
            "id" => {
                if value.starts_with('#') {
                    return Err(Refused::bad(
                        "an update id must not begin with `#` (reserved by the protocol)",
                    ));
                }
                if value.contains(['\r', '\n', '\0']) {
                    return Err(Refused::bad(
                        "an update id must not contain a line break or NUL",
                    ));
                }
                update.id = Some(value.into_owned());
            }
            "type" if value.is_empty() => update.kind = None,
            "type" => {
                crate::wire::validate_event_name(&value)
                    .map_err(|err| Refused::bad(format!("invalid `type`: {err}")))?;
                update.kind = Some(value.into_owned());
            }
            "retry" if value.is_empty() => update.retry = None,
            "retry" => {
                let retry = value.parse().map_err(|_| {
                    Refused::bad(format!(
                        "`retry` must be a number of milliseconds: {value:?}"
                    ))
                })?;
                update.retry = Some(retry);
            }
            _ => {}
        }
    }
    if update.topics.is_empty() {
        return Err(Refused::bad(
            "missing `topic`: an update needs at least one",
        ));
    }
    Ok(update)
}

/// A random (version 4) UUID as a URN, Mercure's form for ids the hub chooses.
pub(super) fn new_urn_uuid() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Some(urn_uuid(&b))
}

/// `urn:uuid:` and the bytes in lowercase hex, grouped 8-4-4-4-12: one allocation (a
/// `format!` per byte made this the largest part of the hub's own cost of a publish).
fn urn_uuid(b: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(45);
    out.push_str("urn:uuid:");
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_read_field_by_field() {
        let update = parse_form(
            b"topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&topic=b&data=line+1%0Aline+2\
              &private=on&id=my-id&type=book&retry=3000",
        )
        .unwrap();
        assert_eq!(update.topics, ["https://example.com/books/1", "b"]);
        assert_eq!(update.data, "line 1\nline 2");
        assert!(update.private);
        assert_eq!(update.id.as_deref(), Some("my-id"));
        assert_eq!(update.kind.as_deref(), Some("book"));
        assert_eq!(update.retry, Some(3000));
    }

    #[test]
    fn bad_forms_are_refused_with_a_reason() {
        for (body, says) in [
            (&b"data=x"[..], "missing `topic`"),
            (b"topic=a&id=%23frag", "`#`"),
            (b"topic=a&id=a%0Ab", "line break"),
            (b"topic=a&retry=soon", "`retry`"),
            (b"topic=a&type=a%0Ab", "`type`"),
            (b"topic=a&data=\xff", "UTF-8"),
        ] {
            let Err(Refused(status, message)) = parse_form(body) else {
                panic!("{body:?} accepted");
            };
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(message.contains(says), "{body:?}: {message}");
        }
    }

    #[test]
    fn a_urn_uuid_is_its_bytes_in_lowercase_hex_grouped_8_4_4_4_12() {
        let bytes = [
            0x00, 0x1f, 0xa0, 0xff, 0x12, 0x34, 0x4a, 0xbc, 0x9d, 0xef, 0x01, 0x23, 0x45, 0x67,
            0x89, 0xab,
        ];
        assert_eq!(
            urn_uuid(&bytes),
            "urn:uuid:001fa0ff-1234-4abc-9def-0123456789ab"
        );
    }

    #[test]
    fn generated_ids_are_urn_uuids_v4() {
        let id = new_urn_uuid().unwrap();
        let uuid = id.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!("89ab".contains(&uuid[19..20]), "{uuid}");
        assert!(uuid
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(new_urn_uuid(), Some(id));
    }
}
