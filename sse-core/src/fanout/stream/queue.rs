//! What one subscriber has queued for its client, in the coding of its response: the frames
//! as they are, or deflated (each live frame once for all gzip subscribers) after the gzip
//! header, with what the trailer needs kept as the parts leave.

use std::collections::VecDeque;

use bytes::Bytes;

use super::batch::take_chunk;
use crate::fanout::frame::Frame;
use crate::wire::gzip::{self, Checksum, Coding, Deflated};
use crate::wire::{encode, EventId};

pub(super) struct Queue {
    pending: VecDeque<Bytes>,
    /// Bytes in `pending`, kept as it changes rather than summed on every poll.
    queued: usize,
    /// For a gzip stream (boxed: most streams are not, and each carries the space).
    gzip: Option<Box<Gzip>>,
}

/// A gzip stream's bookkeeping.
struct Gzip {
    /// What each part in `pending` stands for, in the same order: a part counts in the
    /// trailer once it is written, not when queued (a shutdown drops what is queued).
    parts: VecDeque<Deflated>,
    /// Everything written so far.
    sent: Checksum,
    /// The header was written (it leads the first chunk).
    started: bool,
    /// The trailer was written: nothing may follow it.
    finished: bool,
}

impl Queue {
    /// A queue in `coding`, starting with `first` (the preamble, perhaps a reset); a gzip
    /// stream starts with its header.
    pub(super) fn new(first: VecDeque<Bytes>, coding: Coding) -> Self {
        match coding {
            Coding::Identity => Self {
                queued: first.iter().map(Bytes::len).sum(),
                pending: first,
                gzip: None,
            },
            Coding::Gzip => {
                let mut queue = Self {
                    pending: VecDeque::with_capacity(first.len() + 1),
                    queued: 0,
                    gzip: Some(Box::new(Gzip {
                        parts: VecDeque::with_capacity(first.len() + 1),
                        sent: Checksum::default(),
                        started: false,
                        finished: false,
                    })),
                };
                queue.push_part(Deflated::verbatim(Bytes::from_static(&gzip::HEADER)));
                for bytes in first {
                    queue.push(bytes);
                }
                queue
            }
        }
    }

    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues bytes of this subscriber's own (a preamble, a reset, a replayed event):
    /// deflated here, for this stream alone, when it is gzip.
    pub(super) fn push(&mut self, bytes: Bytes) {
        if self.gzip.is_some() {
            self.push_part(gzip::deflate(&bytes));
        } else {
            self.push_bytes(bytes);
        }
    }

    /// Queues a frame shared with other subscribers: its bytes as they are, or deflated once
    /// for every gzip stream.
    pub(super) fn push_frame(&mut self, frame: Frame) {
        if self.gzip.is_some() {
            self.push_part(frame.deflated());
        } else {
            self.push_bytes(frame.bytes);
        }
    }

    fn push_bytes(&mut self, bytes: Bytes) {
        self.queued += bytes.len();
        self.pending.push_back(bytes);
    }

    fn push_part(&mut self, part: Deflated) {
        self.push_bytes(part.bytes.clone());
        if let Some(gzip) = &mut self.gzip {
            gzip.parts.push_back(part);
        }
    }

    /// The next chunk to write: queued parts joined (see [`take_chunk`]).
    pub(super) fn take_chunk(&mut self) -> Option<Bytes> {
        let before = self.pending.len();
        let chunk = take_chunk(&mut self.pending)?;
        self.queued -= chunk.len();
        if let Some(gzip) = &mut self.gzip {
            gzip.started = true;
            for part in gzip.parts.drain(..before - self.pending.len()) {
                gzip.sent.add(&part);
            }
        }
        Some(chunk)
    }

    /// A keep-alive comment (carrying `id` when events were skipped), to be written now, with
    /// nothing queued: for a gzip stream the constant one is deflated once for all.
    pub(super) fn keep_alive(&mut self, id: Option<EventId>) -> Bytes {
        let Some(gzip) = &mut self.gzip else {
            return match id {
                Some(id) => encode::keep_alive_with_id(id),
                None => Bytes::from_static(encode::KEEP_ALIVE),
            };
        };
        let part = match id {
            Some(id) => &gzip::deflate(&encode::keep_alive_with_id(id)),
            None => gzip::keep_alive(),
        };
        gzip.sent.add(part);
        part.bytes.clone()
    }

    /// The last chunk of a stream that ends cleanly: the gzip trailer, once (identity streams
    /// have none). What is still queued is dropped, and not counted in it.
    pub(super) fn finish(&mut self) -> Option<Bytes> {
        let gzip = self.gzip.as_mut().filter(|gzip| !gzip.finished)?;
        gzip.finished = true;
        self.pending.clear();
        self.queued = 0;
        let trailer = gzip.sent.trailer();
        if gzip.started {
            return Some(trailer);
        }
        Some([&gzip::HEADER[..], &trailer].concat().into())
    }
}
