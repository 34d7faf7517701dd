//! Joining ready frames into one chunk: under load a subscriber's poll costs one write, not
//! one per event.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Most bytes queued for actix in one poll. actix's write buffer grows to the largest chunk it
/// was given and keeps that size, so this bounds memory per busy connection.
pub(super) const MAX_BATCH: usize = 16 * 1024;

/// Frames smaller than this are joined into one chunk (one write instead of many); larger ones
/// are passed on as they are, since copying them costs more than the write saves.
const JOIN_BELOW: usize = 1024;

/// The next chunk for actix: a run of small frames joined into one, or one large frame as it
/// is (a reference count, no copy).
pub(super) fn take_chunk(pending: &mut VecDeque<Bytes>) -> Option<Bytes> {
    let first = pending.pop_front()?;
    let joinable = |b: &Bytes| b.len() < JOIN_BELOW;
    if !joinable(&first) || !pending.front().is_some_and(joinable) {
        return Some(first);
    }
    let mut buf = BytesMut::with_capacity(MAX_BATCH.min(first.len() * (pending.len() + 1)));
    buf.extend_from_slice(&first);
    while let Some(next) = pending.front() {
        if !joinable(next) || buf.len() + next.len() > MAX_BATCH {
            break;
        }
        buf.extend_from_slice(next);
        pending.pop_front();
    }
    Some(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_are_joined_and_large_ones_pass_alone() {
        let small = Bytes::from_static(b"data: x\n\n");
        let large = Bytes::from(vec![b'x'; JOIN_BELOW]);
        let mut pending: VecDeque<Bytes> =
            [small.clone(), small.clone(), large.clone(), small.clone()].into();
        assert_eq!(
            take_chunk(&mut pending).map(|c| c.len()),
            Some(2 * small.len())
        );
        assert_eq!(take_chunk(&mut pending), Some(large));
        assert_eq!(take_chunk(&mut pending), Some(small));
        assert_eq!(take_chunk(&mut pending), None);
    }
}
