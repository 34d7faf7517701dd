//! Reads an SSE response frame by frame, every wait bounded.

use std::pin::Pin;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};

/// One frame of the stream, as sent (fields are not merged across frames).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub comments: Vec<String>,
}

impl Frame {
    /// The data parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        let data = self.data.as_deref().unwrap_or("null");
        serde_json::from_str(data).unwrap_or_else(|err| panic!("data {data:?}: {err}"))
    }

    /// The event id, which every event frame carries.
    pub fn id(&self) -> &str {
        self.id
            .as_deref()
            .unwrap_or_else(|| panic!("frame without id: {self:?}"))
    }

    fn parse(text: &str) -> Self {
        let mut frame = Frame::default();
        for line in text.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "" => frame.comments.push(value),
                "id" => frame.id = Some(value),
                "event" => frame.event = Some(value),
                "retry" => frame.retry = Some(value),
                "data" => {
                    frame.data = Some(match frame.data.take() {
                        Some(previous) => format!("{previous}\n{value}"),
                        None => value,
                    })
                }
                other => panic!("unknown SSE field {other:?} in {text:?}"),
            }
        }
        frame
    }
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, String>>>>;

/// An open event stream.
pub struct SseStream {
    body: Body,
    buf: String,
    ended: bool,
}

impl SseStream {
    /// Opens `url`, optionally resuming after `last_event_id` (sent as the header), and reads
    /// the `: connected` preamble, which it returns with the stream.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> (Self, Frame) {
        Self::open_as(url, last_event_id, None).await
    }

    /// Like [`SseStream::open`], with `token` sent as `Authorization: Bearer`.
    pub async fn open_as(
        url: &str,
        last_event_id: Option<&str>,
        token: Option<&str>,
    ) -> (Self, Frame) {
        let client = awc::Client::new();
        let mut req = client
            .get(url)
            .insert_header(("accept", "text/event-stream"))
            .timeout(Duration::from_secs(5));
        if let Some(id) = last_event_id {
            req = req.insert_header(("last-event-id", id));
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"));
        assert_eq!(res.status(), 200, "GET {url}");
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        let mut stream = SseStream {
            body: Box::pin(res.map(|chunk| chunk.map_err(|err| err.to_string()))),
            buf: String::new(),
            ended: false,
        };
        let preamble = stream
            .next_frame(Duration::from_secs(5))
            .await
            .expect("the stream opens with a preamble");
        assert_eq!(
            preamble.comments.first().map(String::as_str),
            Some("connected"),
            "{preamble:?}"
        );
        (stream, preamble)
    }

    /// The next frame of any kind, or `None` if none arrives within `wait` or the stream ends.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let text: String = self.buf.drain(..end + 2).collect();
                return Some(Frame::parse(&text));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_elapsed) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(Ok(chunk))) => self.buf.push_str(
                    std::str::from_utf8(&chunk).unwrap_or_else(|err| panic!("not UTF-8: {err}")),
                ),
                Ok(Some(Err(err))) => panic!("reading the stream: {err}"),
            }
        }
    }

    /// The next event (keep-alive comments skipped); panics if none comes within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Some(frame) if frame.event.is_some() => return frame,
                Some(_comment) => continue,
                None => panic!("no event within {wait:?}"),
            }
        }
    }

    /// Asserts that no event arrives within `wait` (keep-alive comments are fine).
    pub async fn assert_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_frame(left).await {
                Some(frame) if frame.event.is_some() => panic!("unexpected event: {frame:?}"),
                Some(_comment) => continue,
                None => return,
            }
        }
    }
}

/// The sequence number of an event id `<epoch>-<seq>`.
pub fn seq(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, seq)| seq.parse().ok())
        .unwrap_or_else(|| panic!("malformed event id {id:?}"))
}

/// The epoch part of an event id.
pub fn epoch(id: &str) -> &str {
    id.split_once('-')
        .map(|(epoch, _)| epoch)
        .unwrap_or_else(|| panic!("malformed event id {id:?}"))
}
