//! What happened to the stream being polled on this thread, for its `sse.stream` span: the
//! fan-out counts resumes, catch-ups and resets where they happen, inside a poll of that
//! stream, and their hooks leave a note here that the stream picks up when the poll
//! returns. No per-stream pointer crosses the layers.

use std::cell::Cell;

/// Happenings noted during one poll (or one subscribe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Notes {
    pub(super) resumed: bool,
    pub(super) reset: Option<&'static str>,
    pub(super) caught_up: u32,
}

thread_local! {
    static NOTES: Cell<Notes> = const { Cell::new(Notes { resumed: false, reset: None, caught_up: 0 }) };
}

/// Forgets what other code noted on this thread (a poll starts afresh).
pub(super) fn clear() {
    NOTES.with(|n| n.set(Notes::default()));
}

/// What was noted since [`clear`], cleared.
pub(super) fn take() -> Notes {
    NOTES.with(|n| n.replace(Notes::default()))
}

fn note(f: impl FnOnce(&mut Notes)) {
    NOTES.with(|n| {
        let mut notes = n.get();
        f(&mut notes);
        n.set(notes);
    });
}

pub(super) fn reset(reason: &'static str) {
    note(|n| n.reset = Some(reason));
}

pub(super) fn resumed() {
    note(|n| n.resumed = true);
}

pub(super) fn caught_up() {
    note(|n| n.caught_up = n.caught_up.saturating_add(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happenings_leave_notes_until_taken() {
        clear();
        caught_up();
        caught_up();
        resumed();
        let notes = take();
        assert_eq!((notes.caught_up, notes.resumed), (2, true));
        assert_eq!(take(), Notes::default());
    }
}
