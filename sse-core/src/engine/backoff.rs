//! Exponential backoff between reconnect attempts, shared by every engine's loops.

use std::time::Duration;

use tokio::sync::watch;

/// Doubles a delay from `start` up to `cap`; [`Backoff::reset`] after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    start: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(start: Duration, cap: Duration) -> Self {
        Self {
            start,
            cap,
            next: start,
        }
    }

    /// Back to the first, short delay.
    pub(crate) fn reset(&mut self) {
        self.next = self.start;
    }

    /// The delay to wait now; the next one is twice as long, up to the cap.
    pub(crate) fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.cap);
        now
    }

    /// Waits the next delay, or until `stop` changes (a shutdown), whichever comes first.
    pub(crate) async fn wait(&mut self, stop: &mut watch::Receiver<bool>) {
        let delay = self.step();
        // Either outcome ends the wait; the caller checks whether it is stopping.
        let _ = tokio::time::timeout(delay, stop.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let steps: Vec<_> = (0..5).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, [50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.step().as_millis(), 50);
    }
}
