//! Just enough HTTP/1.1 for the load tool: requests written by hand, response heads parsed with
//! `httparse`, and bodies (chunked, sized or read to the end) decoded incrementally.

use std::fmt;

/// A response that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError(pub String);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

fn error(msg: impl Into<String>) -> HttpError {
    HttpError(msg.into())
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// How the body is delimited.
    pub body: BodyKind,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// Neither: the body runs until the connection closes.
    UntilClose,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while incomplete, else the
/// head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(error(format!("malformed response head: {err}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut body = BodyKind::UntilClose;
    let mut content_type = None;
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                body = BodyKind::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") && body != BodyKind::Chunked {
            let n = value
                .trim()
                .parse()
                .map_err(|_| error(format!("bad Content-Length {value:?}")))?;
            body = BodyKind::Length(n);
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.into_owned());
        }
    }
    Ok(Some((
        Head {
            status,
            body,
            content_type,
        },
        len,
    )))
}

/// Decodes a response body fed in arbitrary chunks, handing out the payload bytes.
#[derive(Debug)]
pub struct Body {
    kind: BodyKind,
    state: Chunk,
    /// Bytes left in a sized body or in the current chunk.
    remaining: u64,
    size_digits: bool,
    in_extension: bool,
    trailer_line: usize,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
}

impl Body {
    /// A decoder for a body of this kind.
    pub fn new(kind: BodyKind) -> Self {
        let remaining = match kind {
            BodyKind::Length(n) => n,
            _ => 0,
        };
        Self {
            kind,
            state: Chunk::Size,
            remaining,
            size_digits: false,
            in_extension: false,
            trailer_line: 0,
            done: kind == BodyKind::Length(0),
        }
    }

    /// Whether the whole body has been read (never, for a body read until close).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes `input`, passing each run of payload bytes to `out`; returns how many bytes of
    /// `input` belong to this body (the rest is the next response on the connection).
    pub fn feed<'a>(
        &mut self,
        input: &'a [u8],
        mut out: impl FnMut(&'a [u8]),
    ) -> Result<usize, HttpError> {
        match self.kind {
            BodyKind::UntilClose => {
                out(input);
                Ok(input.len())
            }
            BodyKind::Length(_) => {
                let n = (self.remaining.min(input.len() as u64)) as usize;
                if n > 0 {
                    out(&input[..n]);
                }
                self.remaining -= n as u64;
                self.done = self.remaining == 0;
                Ok(n)
            }
            BodyKind::Chunked => self.feed_chunked(input, &mut out),
        }
    }

    fn feed_chunked<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut impl FnMut(&'a [u8]),
    ) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() && !self.done {
            if self.state == Chunk::Data {
                let n = (self.remaining.min((input.len() - i) as u64)) as usize;
                out(&input[i..i + n]);
                i += n;
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = Chunk::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            match (self.state, b) {
                (Chunk::Size, b'\r') => self.state = Chunk::SizeLf,
                (Chunk::Size | Chunk::SizeLf, b'\n') => self.end_size_line()?,
                (Chunk::Size, _) if self.in_extension => {}
                (Chunk::Size, b';') => self.in_extension = true,
                (Chunk::Size, b' ' | b'\t') => {}
                (Chunk::Size, _) => {
                    let digit = (b as char)
                        .to_digit(16)
                        .ok_or_else(|| error(format!("bad chunk size byte {b:#04x}")))?;
                    self.remaining = self
                        .remaining
                        .checked_mul(16)
                        .and_then(|r| r.checked_add(u64::from(digit)))
                        .ok_or_else(|| error("chunk size overflows"))?;
                    self.size_digits = true;
                }
                (Chunk::DataCr, b'\r') => self.state = Chunk::DataLf,
                (Chunk::DataCr | Chunk::DataLf, b'\n') => self.state = Chunk::Size,
                (Chunk::Trailer, b'\n') => {
                    if self.trailer_line == 0 {
                        self.done = true;
                    }
                    self.trailer_line = 0;
                }
                (Chunk::Trailer, b'\r') => {}
                (Chunk::Trailer, _) => self.trailer_line += 1,
                (state, b) => {
                    return Err(error(format!(
                        "unexpected byte {b:#04x} in chunked body ({state:?})"
                    )))
                }
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self) -> Result<(), HttpError> {
        if !self.size_digits {
            return Err(error("chunk size line without a size"));
        }
        self.state = if self.remaining == 0 {
            Chunk::Trailer
        } else {
            Chunk::Data
        };
        self.size_digits = false;
        self.in_extension = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(
        kind: BodyKind,
        wire: &[u8],
        size: usize,
    ) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut body = Body::new(kind);
        let mut out = Vec::new();
        let mut used = 0;
        for chunk in wire.chunks(size) {
            if body.is_done() {
                break;
            }
            used += body.feed(chunk, |d| out.extend_from_slice(d))?;
        }
        Ok((out, used, body.is_done()))
    }

    #[test]
    fn chunked_bodies_at_every_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nHTTP/1.1 200";
        for size in 1..=wire.len() {
            let (out, used, done) = decode(BodyKind::Chunked, wire, size).expect("valid");
            assert_eq!(out, b"hello, world", "chunks of {size}");
            assert!(done);
            assert_eq!(&wire[used..], b"HTTP/1.1 200", "chunks of {size}");
        }
    }

    #[test]
    fn endless_chunked_stream_and_hex_sizes() {
        let (out, _, done) = decode(BodyKind::Chunked, b"A\r\n0123456789\r\n1f\r\n", 4).unwrap();
        assert_eq!(out, b"0123456789");
        assert!(!done);
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"fffffffffffffffff\r\n",
        ] {
            assert!(decode(BodyKind::Chunked, bad, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sized_and_until_close_bodies() {
        let (out, used, done) = decode(BodyKind::Length(3), b"abcdef", 2).unwrap();
        assert_eq!((out.as_slice(), used, done), (&b"abc"[..], 3, true));
        assert!(Body::new(BodyKind::Length(0)).is_done());
        let (out, _, done) = decode(BodyKind::UntilClose, b"abcdef", 4).unwrap();
        assert_eq!((out.as_slice(), done), (&b"abcdef"[..], false));
    }

    #[test]
    fn heads() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Ty").unwrap(), None);
        let wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\n";
        let (head, len) = parse_head(wire).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.body, BodyKind::Chunked);
        assert_eq!(head.content_type.as_deref(), Some("text/event-stream"));
        assert_eq!(&wire[len..], b"5\r\n");
        let (head, _) = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((head.status, head.body), (404, BodyKind::Length(9)));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
