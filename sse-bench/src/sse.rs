//! An incremental parser of the SSE wire format, as a browser reads it (WHATWG HTML,
//! "Server-sent events", "Interpreting an event stream"), fed with arbitrary chunks.

/// What the parser found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A dispatched event.
    Event {
        /// The `event:` field; empty for the default type, `message`.
        event: &'a [u8],
        /// The `data:` lines, joined with LF.
        data: &'a [u8],
        /// The last event id seen on the stream so far (ids persist across events).
        id: &'a [u8],
    },
    /// A comment line, without its leading colon (keep-alives are comments).
    Comment(&'a [u8]),
}

/// Turns a byte stream into events, keeping partial lines across calls to [`Parser::feed`].
#[derive(Debug, Default)]
pub struct Parser {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The previous chunk ended with CR: a LF at the start of the next one belongs to it.
    after_cr: bool,
    started: bool,
    data: Vec<u8>,
    event: Vec<u8>,
    last_id: Vec<u8>,
}

const BOM: &[u8] = "\u{feff}".as_bytes();

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `input`, calling `on` for each complete event or comment in it.
    pub fn feed(&mut self, input: &[u8], mut on: impl FnMut(Item<'_>)) {
        if self.started {
            return self.lines(input, &mut on);
        }
        // A BOM may be split across chunks: wait until enough bytes decide it.
        let mut head = std::mem::take(&mut self.partial);
        head.extend_from_slice(input);
        if head.len() < BOM.len() && BOM.starts_with(&head) {
            self.partial = head;
            return;
        }
        self.started = true;
        self.lines(head.strip_prefix(BOM).unwrap_or(&head), &mut on);
    }

    /// The last event id seen so far, also from frames without data (sse-core sends the
    /// current id that way when a stream opens).
    pub fn last_id(&self) -> &[u8] {
        &self.last_id
    }

    fn lines(&mut self, mut input: &[u8], on: &mut impl FnMut(Item<'_>)) {
        if input.is_empty() {
            return;
        }
        if self.after_cr && input.first() == Some(&b'\n') {
            input = &input[1..];
        }
        self.after_cr = false;
        while let Some(end) = memchr::memchr2(b'\n', b'\r', input) {
            if self.partial.is_empty() {
                self.line(&input[..end], on);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&input[..end]);
                self.line(&line, on);
                line.clear();
                self.partial = line;
            }
            let crlf = input[end] == b'\r';
            input = &input[end + 1..];
            if crlf {
                match input.first() {
                    Some(b'\n') => input = &input[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.partial.extend_from_slice(input);
    }

    fn line(&mut self, line: &[u8], on: &mut impl FnMut(Item<'_>)) {
        if line.is_empty() {
            return self.dispatch(on);
        }
        if let Some(comment) = line.strip_prefix(b":") {
            return on(Item::Comment(comment));
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_id.clear();
                self.last_id.extend_from_slice(value);
            }
            // `retry` and unknown fields do not affect what the benchmark counts.
            _ => {}
        }
    }

    fn dispatch(&mut self, on: &mut impl FnMut(Item<'_>)) {
        if !self.data.is_empty() {
            self.data.pop(); // the LF after the last data line
            on(Item::Event {
                event: &self.event,
                data: &self.data,
                id: &self.last_id,
            });
        }
        self.data.clear();
        self.event.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Event(String, String, String),
        Comment(String),
    }

    fn own(item: Item<'_>) -> Owned {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match item {
            Item::Event { event, data, id } => Owned::Event(s(event), s(data), s(id)),
            Item::Comment(c) => Owned::Comment(s(c)),
        }
    }

    fn parse_in_chunks(wire: &[u8], size: usize) -> Vec<Owned> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for chunk in wire.chunks(size.max(1)) {
            p.feed(chunk, |i| out.push(own(i)));
        }
        out
    }

    fn ev(event: &str, data: &str, id: &str) -> Owned {
        Owned::Event(event.into(), data.into(), id.into())
    }

    #[test]
    fn sse_core_frames_parse_at_every_split() {
        let wire = b": connected\nid: e1-0\n\nid: e1-1\nevent: tick\ndata: {\"a\":1}\n\n: keep-alive\n\nid: e1-2\nevent: tick\ndata: x\ndata: y\n\n";
        let expected = vec![
            Owned::Comment(" connected".into()),
            ev("tick", "{\"a\":1}", "e1-1"),
            Owned::Comment(" keep-alive".into()),
            ev("tick", "x\ny", "e1-2"),
        ];
        for size in 1..=wire.len() {
            assert_eq!(parse_in_chunks(wire, size), expected, "chunks of {size}");
        }
    }

    #[test]
    fn every_line_ending_and_a_split_crlf() {
        let wire = b"data: a\r\ndata: b\rdata: c\n\r\nevent: e\rdata:no-space\r\r";
        let expected = vec![ev("", "a\nb\nc", ""), ev("e", "no-space", "")];
        for size in 1..=wire.len() {
            assert_eq!(parse_in_chunks(wire, size), expected, "chunks of {size}");
        }
    }

    #[test]
    fn spec_edge_cases() {
        // Empty data dispatches an empty event; no data dispatches nothing; a field without a
        // colon has an empty value; ids persist and an id with NUL is ignored; unknown
        // fields and retry are ignored; only one leading space is stripped.
        let wire =
            b"data\n\nevent: x\n\nid: 7\ndata:  two\nretry: 10\nfoo: bar\n\nid: a\0b\ndata: z\n\n";
        assert_eq!(
            parse_in_chunks(wire, 3),
            vec![ev("", "", ""), ev("", " two", "7"), ev("", "z", "7")]
        );
    }

    #[test]
    fn a_leading_bom_is_skipped_even_when_split() {
        let mut wire = "\u{feff}".as_bytes().to_vec();
        wire.extend_from_slice(b"data: a\n\n");
        for size in 1..=wire.len() {
            assert_eq!(parse_in_chunks(&wire, size), vec![ev("", "a", "")]);
        }
        assert_eq!(parse_in_chunks(b"d", 1), vec![]);
    }

    #[test]
    fn an_unterminated_event_is_not_dispatched() {
        assert_eq!(parse_in_chunks(b"data: a\n", 4), vec![]);
    }
}
