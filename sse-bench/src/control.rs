//! One-off requests to a server under test, outside the measured load: its `/stats` JSON, the
//! current event id from the head of a stream, a raw stream request with `Last-Event-ID`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::{parse_head, Body};
use crate::sse::Parser;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` on a new connection; the status and the whole body.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut wire = Vec::new();
    stream.read_to_end(&mut wire)?;
    let (head, len) = parse_head(&wire)
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other("incomplete response head"))?;
    let mut body = Vec::new();
    Body::new(head.body)
        .feed(&wire[len..], |b| body.extend_from_slice(b))
        .map_err(io::Error::other)?;
    Ok((head.status, body))
}

/// The server's `/stats` (ours only).
pub fn stats(addr: SocketAddr) -> io::Result<serde_json::Value> {
    let (status, body) = get(addr, "/stats")?;
    if status != 200 {
        return Err(io::Error::other(format!("/stats answered {status}")));
    }
    serde_json::from_slice(&body).map_err(io::Error::other)
}

/// A `/stats` counter, or 0.
pub fn counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats
        .get(name)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// The id a new stream at `path` starts from: sse-core sends it in a frame without data right
/// after the response head.
pub fn current_id(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0; 16 * 1024];
    let mut wire = Vec::new();
    let mut state: Option<(Body, Parser)> = None;
    while Instant::now() < deadline {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let input: &[u8] = match &mut state {
            Some(_) => &buf[..n],
            None => {
                wire.extend_from_slice(&buf[..n]);
                let Some((head, len)) = parse_head(&wire).map_err(io::Error::other)? else {
                    continue;
                };
                if head.status != 200 {
                    return Err(io::Error::other(format!("{path} answered {}", head.status)));
                }
                state = Some((Body::new(head.body), Parser::new()));
                &wire[len..]
            }
        };
        let (body, parser) = state.as_mut().expect("set above");
        body.feed(input, |chunk| parser.feed(chunk, |_| {}))
            .map_err(io::Error::other)?;
        if !parser.last_id().is_empty() {
            return Ok(String::from_utf8_lossy(parser.last_id()).into_owned());
        }
    }
    Err(io::Error::other(format!("{path} sent no event id")))
}

/// `<epoch>-<seq>` moved `back` events into the past; `None` for ids of another shape (the
/// Redis backend's `<epoch>-<ms>-<n>`).
pub fn id_before(id: &str, back: u64) -> Option<String> {
    let (epoch, seq) = id.split_once('-')?;
    let seq: u64 = seq.parse().ok()?;
    Some(format!("{epoch}-{}", seq.saturating_sub(back)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_move_back() {
        assert_eq!(id_before("k3x-65536", 55_000).as_deref(), Some("k3x-10536"));
        assert_eq!(id_before("k3x-10", 55_000).as_deref(), Some("k3x-0"));
        assert_eq!(id_before("k3x-1700000000000-0", 5), None);
        assert_eq!(id_before("nodash", 5), None);
    }
}
