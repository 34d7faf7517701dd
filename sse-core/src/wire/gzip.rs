//! gzip on the wire, made of parts that can be shared: each frame deflated once into blocks
//! that end in a full flush (so they depend on nothing sent before them), and the only
//! per-stream parts, the 10-byte header and the trailer (a final empty block, the CRC-32
//! combined from the frames' own, and the length).
//!
//! The deflate stream of a gzip response is any sequence of blocks, the last one marked final;
//! a full flush ends a sequence on a byte boundary with the compressor's history forgotten, so
//! the deflated frames can be concatenated in any order and for any subset of subscribers.

use std::cell::RefCell;
use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress, Status};

use super::encode::KEEP_ALIVE;

/// The gzip header of every stream: deflate, no name or time, unknown OS (RFC 1952).
pub(crate) const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A final empty block with fixed codes: what ends the deflate stream after the last flush.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// How a stream's bytes are sent (its `Content-Encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Identity,
    Gzip,
}

/// One frame, deflated: blocks ending in a full flush, with the CRC-32 and the length of the
/// bytes they stand for, which the trailer of every stream that sends them combines.
#[derive(Clone, Debug)]
pub(crate) struct Deflated {
    pub(crate) bytes: Bytes,
    crc: u32,
    len: u64,
}

impl Deflated {
    /// An empty part that stands for nothing (the header).
    pub(crate) fn verbatim(bytes: Bytes) -> Self {
        Self {
            bytes,
            crc: 0,
            len: 0,
        }
    }
}

thread_local! {
    /// One compressor per thread, kept between frames: a new one allocates some 300 KiB. The
    /// full flush after each frame makes it forget that frame.
    static COMPRESSOR: RefCell<Compress> = RefCell::new(new_compressor());
}

fn new_compressor() -> Compress {
    // Raw deflate (no zlib header): the gzip header and trailer are written per stream.
    Compress::new(Compression::default(), false)
}

/// `raw` deflated into blocks that end in a full flush.
pub(crate) fn deflate(raw: &[u8]) -> Deflated {
    let bytes = COMPRESSOR
        .try_with(|compressor| {
            let mut compressor = compressor.try_borrow_mut().ok()?;
            let deflated = full_flush(&mut compressor, raw);
            if deflated.is_none() {
                *compressor = new_compressor();
            }
            deflated
        })
        .ok()
        .flatten()
        // Never expected (miniz_oxide fails only when misused), but stored blocks are valid
        // deflate too: the stream goes on, uncompressed.
        .unwrap_or_else(|| stored(raw));
    Deflated {
        bytes: Bytes::from(bytes),
        crc: crc32fast::hash(raw),
        len: raw.len() as u64,
    }
}

/// `raw` through `compressor`, ending in a full flush; `None` if the compressor failed.
fn full_flush(compressor: &mut Compress, raw: &[u8]) -> Option<Vec<u8>> {
    let start = compressor.total_in();
    let mut out = Vec::with_capacity(raw.len() / 2 + 64);
    // Each round either consumes input or fills the output, which then grows: the flush is
    // complete once all input is in and the output was not filled. Bounded all the same.
    for _ in 0..64 {
        let consumed = usize::try_from(compressor.total_in() - start).ok()?;
        let rest = raw.get(consumed..)?;
        match compressor.compress_vec(rest, &mut out, FlushCompress::Full) {
            Ok(Status::Ok | Status::BufError) => {}
            Ok(Status::StreamEnd) | Err(_) => return None,
        }
        let consumed = usize::try_from(compressor.total_in() - start).ok()?;
        if consumed == raw.len() && out.len() < out.capacity() {
            return Some(out);
        }
        out.reserve(out.capacity().max(64));
    }
    None
}

/// `raw` as stored (uncompressed) deflate blocks, ending on a byte boundary as a full flush
/// does.
fn stored(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 5 * (raw.len() / 0xffff + 1));
    let mut chunks = raw.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
    }
    for chunk in chunks {
        // Fits: chunks are at most 0xffff bytes.
        let len = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The keep-alive comment, deflated once for every stream.
pub(crate) fn keep_alive() -> &'static Deflated {
    static KEEP_ALIVE_DEFLATED: LazyLock<Deflated> = LazyLock::new(|| deflate(KEEP_ALIVE));
    &KEEP_ALIVE_DEFLATED
}

/// What one gzip stream has sent so far, for its trailer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Checksum {
    hasher: crc32fast::Hasher,
}

impl Checksum {
    /// Adds a part that was sent: its CRC combined, not the bytes read again.
    pub(crate) fn add(&mut self, part: &Deflated) {
        if part.len > 0 {
            let part = crc32fast::Hasher::new_with_initial_len(part.crc, part.len);
            self.hasher.combine(&part);
        }
    }

    /// The end of the stream: the final block, then the CRC-32 and the length (mod 2^32) of
    /// everything sent.
    pub(crate) fn trailer(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(FINAL_BLOCK.len() + 8);
        out.put_slice(&FINAL_BLOCK);
        out.put_u32_le(self.hasher.clone().finalize());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        out.put_u32_le(self.hasher.total_len() as u32);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use proptest::prelude::*;

    use super::*;

    /// A gzip stream made of `parts`, deflated each on its own, as a subscriber receives it.
    fn gzip_of(parts: &[&[u8]]) -> Vec<u8> {
        let mut sum = Checksum::default();
        let mut wire = HEADER.to_vec();
        for part in parts {
            let deflated = deflate(part);
            sum.add(&deflated);
            wire.extend_from_slice(&deflated.bytes);
        }
        wire.extend_from_slice(&sum.trailer());
        wire
    }

    fn gunzip(wire: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(wire).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn frames_deflated_apart_decode_as_one_gzip_stream() {
        let json = format!("data: {}\n\n", "{\"k\":\"v\"},".repeat(400));
        let parts: [&[u8]; 5] = [b"retry: 1000\n\n", json.as_bytes(), b"", KEEP_ALIVE, b"x"];
        assert_eq!(gunzip(&gzip_of(&parts)).unwrap(), parts.concat());
    }

    #[test]
    fn a_frame_deflated_once_is_the_same_whatever_came_before() {
        let frame = b"id: 1\nevent: e\ndata: {\"a\":1}\n\n";
        let alone = deflate(frame);
        deflate(&[b'x'; 70_000]);
        deflate(frame);
        assert_eq!(deflate(frame).bytes, alone.bytes);
    }

    #[test]
    fn the_stored_fallback_is_valid_deflate() {
        let raw: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
        for chunk in [&raw[..], b""] {
            let part = Deflated {
                bytes: stored(chunk).into(),
                crc: crc32fast::hash(chunk),
                len: chunk.len() as u64,
            };
            let mut sum = Checksum::default();
            sum.add(&part);
            let wire = [&HEADER[..], &part.bytes, &sum.trailer()].concat();
            assert_eq!(gunzip(&wire).unwrap(), chunk);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the frames and their order, the deflated parts, the header and the trailer
        /// decode to exactly the frames' bytes.
        #[test]
        fn any_sequence_of_deflated_frames_decodes_to_the_frames(
            parts in prop::collection::vec(
                prop::collection::vec(prop::sample::select(b"ab{}\": \n01".to_vec()), 0..3000),
                0..12),
        ) {
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(gunzip(&gzip_of(&parts)).unwrap(), parts.concat());
        }
    }
}
