//! The SSE reader of every test: frames exactly as sent (comments, the id-only preamble,
//! `retry`), and events as a browser dispatches them (data joined, the last event id carried
//! over, `message` by default). Lines may end in LF, CRLF or CR and be split anywhere across
//! chunks. A field the SSE format does not define fails the test: sse-core never sends one.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use crate::WAIT;

/// One frame of the stream, as sent: the lines up to a blank line (fields are not merged
/// across frames).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    /// The `id:` field.
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines, joined with LF.
    pub data: Option<String>,
    /// The `retry:` field, unparsed.
    pub retry: Option<String>,
    /// The comment lines, without the colon and one leading space.
    pub comments: Vec<String>,
}

impl Frame {
    /// The data parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        let data = self.data.as_deref().unwrap_or("null");
        serde_json::from_str(data).unwrap_or_else(|err| panic!("data {data:?}: {err}"))
    }

    /// The event id, which every event frame of sse-core carries.
    pub fn id(&self) -> &str {
        self.id
            .as_deref()
            .unwrap_or_else(|| panic!("frame without id: {self:?}"))
    }

    /// Whether a browser dispatches an event for it: it has data.
    pub fn is_event(&self) -> bool {
        self.data.is_some()
    }

    fn is_empty(&self) -> bool {
        *self == Frame::default()
    }

    /// Adds one line (without its line ending) to the frame.
    fn line(&mut self, line: &str) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "" => self.comments.push(value),
            "id" => self.id = Some(value),
            "event" => self.event = Some(value),
            "retry" => self.retry = Some(value),
            "data" => {
                self.data = Some(match self.data.take() {
                    Some(previous) => format!("{previous}\n{value}"),
                    None => value,
                })
            }
            other => panic!("unknown SSE field {other:?} in line {line:?}"),
        }
    }
}

/// An event as a browser's `EventSource` dispatches it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The event type: `message` when the frame names none.
    pub event: String,
    /// The data lines, joined with LF.
    pub data: String,
    /// The last event id of the stream at this event (ids carry over to later events).
    pub id: String,
    /// The reconnection time, if the frame set one.
    pub retry: Option<Duration>,
}

/// Turns bytes into frames; a partial line waits for the rest.
#[derive(Debug, Default)]
struct Parser {
    pending: Vec<u8>,
    frame: Frame,
    started: bool,
}

impl Parser {
    /// The next complete frame in what was fed so far. At the end of the stream (`ended`), a
    /// trailing CR ends its line.
    fn next(&mut self, ended: bool) -> Option<Frame> {
        if !self.started {
            const BOM: &[u8] = "\u{feff}".as_bytes();
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) && !ended {
                return None;
            }
            if self.pending.starts_with(BOM) {
                self.pending.drain(..BOM.len());
            }
            self.started = true;
        }
        loop {
            let end = self
                .pending
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')?;
            let after = match (self.pending[end], self.pending.get(end + 1)) {
                (b'\r', Some(b'\n')) => end + 2,
                // A LF may still come to complete the CRLF.
                (b'\r', None) if !ended => return None,
                _ => end + 1,
            };
            let line: Vec<u8> = self.pending.drain(..after).take(end).collect();
            let line = String::from_utf8(line).unwrap_or_else(|err| panic!("not UTF-8: {err}"));
            if !line.is_empty() {
                self.frame.line(&line);
            } else if !self.frame.is_empty() {
                return Some(std::mem::take(&mut self.frame));
            }
        }
    }
}

/// The frames of a response body read raw (dechunked), for tests that read a stream without
/// a client: the complete frames, and what there is of the frame the body stops in (its last
/// line may be cut short; empty if the body ends between frames).
pub fn parse_body(body: &str) -> (Vec<Frame>, Frame) {
    let mut parser = Parser::default();
    parser.pending.extend_from_slice(body.as_bytes());
    let complete = std::iter::from_fn(|| parser.next(false)).collect();
    let rest = std::mem::take(&mut parser.pending);
    let rest = String::from_utf8_lossy(&rest);
    let rest = rest.trim_end_matches(['\r', '\n']);
    if !rest.is_empty() {
        parser.frame.line(rest);
    }
    (complete, parser.frame)
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, String>>>>;

/// Why no frame came.
enum Stop {
    TimedOut,
    Ended,
    Failed(String),
}

/// An open event stream over awc.
pub struct SseClient {
    /// The response status.
    pub status: u16,
    /// The response headers.
    pub headers: awc::http::header::HeaderMap,
    body: Body,
    parser: Parser,
    ended: bool,
    last_id: String,
}

impl SseClient {
    /// Opens `url`, sending `last_event_id` as `Last-Event-ID` if given; whatever the status.
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> SseClient {
        SseClient::connect_with(url, |req| match last_event_id {
            Some(id) => req.insert_header(("Last-Event-ID", id)),
            None => req,
        })
        .await
    }

    /// Opens `url` with the request as `build` makes it; whatever the status. The whole
    /// response may take up to [`WAIT`] (awc's timeout covers the body too).
    pub async fn connect_with(
        url: &str,
        build: impl FnOnce(awc::ClientRequest) -> awc::ClientRequest,
    ) -> SseClient {
        let client = awc::Client::builder().timeout(WAIT).finish();
        let res = build(client.get(url))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"));
        SseClient {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: Box::pin(res.map(|chunk| chunk.map_err(|err| err.to_string()))),
            parser: Parser::default(),
            ended: false,
            last_id: String::new(),
        }
    }

    /// Opens `url` as a stream that must be one (200, `text/event-stream`), resuming after
    /// `last_event_id` if given, and reads the `: connected` preamble, which it returns.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> (SseClient, Frame) {
        SseClient::open_as(url, last_event_id, None).await
    }

    /// Like [`SseClient::open`], with `token` sent as `Authorization: Bearer`.
    pub async fn open_as(
        url: &str,
        last_event_id: Option<&str>,
        token: Option<&str>,
    ) -> (SseClient, Frame) {
        let mut stream = SseClient::connect_with(url, |req| {
            let mut req = req.insert_header(("accept", "text/event-stream"));
            if let Some(id) = last_event_id {
                req = req.insert_header(("last-event-id", id));
            }
            match token {
                Some(token) => req.bearer_auth(token),
                None => req,
            }
        })
        .await;
        assert_eq!(stream.status, 200, "GET {url}");
        let content_type = stream
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(content_type, "text/event-stream", "GET {url}");
        let preamble = stream
            .next_frame(WAIT)
            .await
            .expect("the stream opens with a preamble");
        assert_eq!(
            preamble.comments.first().map(String::as_str),
            Some("connected"),
            "{preamble:?}"
        );
        (stream, preamble)
    }

    async fn read_frame(&mut self, deadline: Instant) -> Result<Frame, Stop> {
        loop {
            if let Some(frame) = self.parser.next(self.ended) {
                if let Some(id) = frame.id.as_deref().filter(|id| !id.contains('\0')) {
                    id.clone_into(&mut self.last_id);
                }
                return Ok(frame);
            }
            if self.ended {
                return Err(Stop::Ended);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_elapsed) => return Err(Stop::TimedOut),
                Ok(None) => self.ended = true,
                Ok(Some(Ok(chunk))) => self.parser.pending.extend_from_slice(&chunk),
                Ok(Some(Err(err))) => return Err(Stop::Failed(err)),
            }
        }
    }

    async fn read_event(&mut self, deadline: Instant) -> Result<Event, Stop> {
        loop {
            let frame = self.read_frame(deadline).await?;
            let Some(data) = frame.data else { continue };
            return Ok(Event {
                event: frame.event.unwrap_or_else(|| "message".to_owned()),
                data,
                id: self.last_id.clone(),
                retry: frame
                    .retry
                    .and_then(|ms| ms.parse().ok())
                    .map(Duration::from_millis),
            });
        }
    }

    /// The next frame of any kind (comments too), or `None` if none comes within `wait` or
    /// the stream ends.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        match self.read_frame(Instant::now() + wait).await {
            Ok(frame) => Some(frame),
            Err(Stop::TimedOut | Stop::Ended) => None,
            Err(Stop::Failed(err)) => panic!("reading the stream: {err}"),
        }
    }

    /// The next frame with an event (comments and id-only frames skipped); fails the test if
    /// none comes within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Frame {
        let deadline = Instant::now() + wait;
        loop {
            match self.read_frame(deadline).await {
                Ok(frame) if frame.is_event() => return frame,
                Ok(_) => {}
                Err(Stop::TimedOut) => panic!("no event within {wait:?}"),
                Err(Stop::Ended) => panic!("stream ended"),
                Err(Stop::Failed(err)) => panic!("stream error: {err}"),
            }
        }
    }

    /// The next event; fails the test after [`WAIT`].
    pub async fn next(&mut self) -> Event {
        match self.read_event(Instant::now() + WAIT).await {
            Ok(event) => event,
            Err(Stop::TimedOut) => panic!("no event within {WAIT:?}"),
            Err(Stop::Ended) => panic!("stream ended"),
            Err(Stop::Failed(err)) => panic!("stream error: {err}"),
        }
    }

    /// The next event, or `None` if none arrives within `wait` (or the stream ends).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        match self.read_event(Instant::now() + wait).await {
            Ok(event) => Some(event),
            Err(Stop::TimedOut | Stop::Ended) => None,
            Err(Stop::Failed(err)) => panic!("stream error: {err}"),
        }
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// Reads `during` events (data `0`, `1`, ...) until an `sse-reset`, the `n`th one, or a
    /// quiet [`WAIT`]: how many came before the reset, and the reset's data if it came. Fails
    /// the test at a silent gap: an event missing with no reset before it.
    pub async fn during_until_reset(&mut self, n: usize) -> (usize, Option<String>) {
        let mut during = 0;
        while during < n {
            let Some(event) = self.next_within(WAIT).await else {
                break;
            };
            match event.event.as_str() {
                "during" => {
                    assert_eq!(
                        event.data,
                        during.to_string(),
                        "event {during} missing and no reset before it: a silent gap"
                    );
                    during += 1;
                }
                "sse-reset" => return (during, Some(event.data)),
                _ => {}
            }
        }
        (during, None)
    }

    /// Asserts that no event arrives within `quiet` (comments, such as keep-alives, may).
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        match self.read_event(Instant::now() + quiet).await {
            Ok(event) => panic!("unexpected event: {event:?}"),
            Err(Stop::TimedOut | Stop::Ended) => {}
            Err(Stop::Failed(err)) => panic!("stream error: {err}"),
        }
    }

    /// Waits for the end of the stream (or a broken connection), reading past any event;
    /// fails the test after [`WAIT`].
    pub async fn assert_ends(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_frame(deadline).await {
                Ok(_) => {}
                Err(Stop::Ended | Stop::Failed(_)) => return,
                Err(Stop::TimedOut) => panic!("stream did not end within {WAIT:?}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_in_chunks(wire: &[u8], size: usize) -> Vec<Frame> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in wire.chunks(size) {
            parser.pending.extend_from_slice(chunk);
            out.extend(std::iter::from_fn(|| parser.next(false)));
        }
        out.extend(std::iter::from_fn(|| parser.next(true)));
        out
    }

    #[test]
    fn frames_are_the_same_at_every_split_and_every_line_ending() {
        let lf = "\u{feff}: connected\nid: e-0\n\nid: e-1\nevent: t\ndata: a\ndata: b\n\n";
        let preamble = Frame {
            id: Some("e-0".into()),
            comments: vec!["connected".into()],
            ..Frame::default()
        };
        let event = Frame {
            id: Some("e-1".into()),
            event: Some("t".into()),
            data: Some("a\nb".into()),
            ..Frame::default()
        };
        for wire in [
            lf.to_owned(),
            lf.replace('\n', "\r\n"),
            lf.replace('\n', "\r"),
        ] {
            for size in 1..=wire.len() {
                assert_eq!(
                    frames_in_chunks(wire.as_bytes(), size),
                    vec![preamble.clone(), event.clone()],
                    "{wire:?} in chunks of {size}"
                );
            }
        }
    }

    #[test]
    fn a_body_cut_off_mid_frame_gives_the_complete_frames_and_what_there_is_of_the_last() {
        let (complete, last) = parse_body("data: 1\n\nevent: sse-reset\ndata: {\"re");
        assert_eq!(complete.len(), 1);
        assert_eq!(complete[0].data.as_deref(), Some("1"));
        assert_eq!(last.event.as_deref(), Some("sse-reset"));
        assert_eq!(last.data.as_deref(), Some("{\"re"));
        assert_eq!(parse_body("data: 1\n\n").1, Frame::default());
    }
}
