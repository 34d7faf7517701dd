//! Recognising entries an instance sent twice: when the reply to a batch is lost, the
//! sender cannot know whether it was stored and sends it again.

// The SQL log writes each batch in a transaction, never twice: only the others use this.
#![cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "testing", test)),
    allow(dead_code)
)]

use std::collections::HashMap;

/// The last ticket seen from each sending instance. Tickets from one sender only ever
/// increase, except when it sends a batch again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Senders(HashMap<u64, u64>);

impl Senders {
    /// Whether ticket `ticket` of `instance` repeats one already seen. Ticket 0 (reset
    /// markers) is never a repeat.
    pub(crate) fn is_repeat(&mut self, instance: u64, ticket: u64) -> bool {
        if ticket == 0 {
            return false;
        }
        let last = self.0.entry(instance).or_insert(0);
        if ticket <= *last {
            return true;
        }
        *last = ticket;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resent_ticket_is_a_repeat_per_sender() {
        let mut s = Senders::default();
        assert!(!s.is_repeat(1, 1));
        assert!(!s.is_repeat(1, 2));
        assert!(!s.is_repeat(2, 1));
        assert!(s.is_repeat(1, 2));
        assert!(s.is_repeat(1, 1));
        assert!(!s.is_repeat(1, 0));
        assert!(!s.is_repeat(1, 0));
        assert!(!s.is_repeat(1, 3));
    }
}
