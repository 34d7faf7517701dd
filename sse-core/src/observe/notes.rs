//! What happened to the stream being polled on this thread, for its `sse.stream` span: the
//! fan-out counts resumes, catch-ups and resets where they happen, inside a poll of that
//! stream, and [`Reported`] counters (or the reset hook) leave a note here that the stream
//! picks up when the poll returns. No per-stream pointer crosses the layers.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Which of the fan-out's counters a [`Reported`] is.
pub(crate) const RESUMED: u8 = 0;
/// See [`RESUMED`].
pub(crate) const CAUGHT_UP: u8 = 1;

/// A counter of the fan-out's `Counters` that also reports each increment as a metric and a
/// note for the stream being polled; used exactly like the `AtomicU64` it wraps, so the sites
/// that count need no hook of their own.
#[derive(Debug, Default)]
pub(crate) struct Reported<const WHAT: u8>(AtomicU64);

impl<const WHAT: u8> Reported<WHAT> {
    /// Adds `n`, like [`AtomicU64::fetch_add`], and reports it.
    pub(crate) fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        match WHAT {
            RESUMED => {
                super::metrics::resume("resumed");
                note(|notes| notes.resumed = true);
            }
            _ => {
                super::metrics::caught_up();
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                note(|notes| notes.caught_up = notes.caught_up.saturating_add(n));
            }
        }
        self.0.fetch_add(n, order)
    }

    /// The count, like [`AtomicU64::load`].
    pub(crate) fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_counters_count_and_leave_notes() {
        clear();
        let c = Reported::<CAUGHT_UP>::default();
        c.fetch_add(1, Ordering::Relaxed);
        c.fetch_add(1, Ordering::Relaxed);
        Reported::<RESUMED>::default().fetch_add(1, Ordering::Relaxed);
        assert_eq!(c.load(Ordering::Relaxed), 2);
        let notes = take();
        assert_eq!((notes.caught_up, notes.resumed), (2, true));
        assert_eq!(take(), Notes::default());
    }
}
