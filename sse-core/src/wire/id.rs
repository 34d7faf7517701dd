//! Event ids: an epoch and a position (a sequence number, or an event log's entry id).

use std::fmt;
use std::str::FromStr;

use crate::error::MalformedEventId;

/// The id of a published event, sent on the wire as `id: <epoch>-<seq>`.
///
/// The epoch is chosen when a [`Broadcaster`](crate::Broadcaster) is built, so an id kept by a
/// browser across a server restart is recognised as stale instead of being misread as a
/// position in the new server's history.
///
/// ```
/// use sse_core::EventId;
///
/// let id: EventId = "k2f9a1-42".parse().unwrap();
/// assert_eq!(id.seq(), 42);
/// assert_eq!(id.to_string(), "k2f9a1-42");
/// assert!("42".parse::<EventId>().is_err());
///
/// // With the Redis engine: `<epoch>-<ms>-<n>`, the epoch of the Redis stream and its entry id.
/// let id: EventId = "k2f9a1-1700000000000-3".parse().unwrap();
/// assert_eq!(id.position(), (1_700_000_000_000, 3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventId {
    epoch: u64,
    /// `Some(ms)` for a Redis stream entry id `<ms>-<seq>`.
    ms: Option<u64>,
    seq: u64,
}

impl EventId {
    pub(crate) fn new(epoch: u64, seq: u64) -> Self {
        Self {
            epoch,
            ms: None,
            seq,
        }
    }

    /// The id of the Redis stream entry `<ms>-<seq>` in the stream of epoch `epoch`.
    pub(crate) fn entry(epoch: u64, ms: u64, seq: u64) -> Self {
        Self {
            epoch,
            ms: Some(ms),
            seq,
        }
    }

    /// The epoch of the broadcaster (or, with the Redis backend, of the Redis stream) that
    /// published the event.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The position of the event in its broadcaster's sequence (the first event is 1); with
    /// the Redis backend, the sequence part of the stream entry id.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The Redis stream entry id `(ms, seq)` of an event published through the Redis backend.
    #[deprecated(
        since = "0.2.0",
        note = "use `EventId::position`, which every event log engine fills"
    )]
    pub fn redis_entry(&self) -> Option<(u64, u64)> {
        self.entry_parts()
    }

    /// The event's place within its epoch, ordered: `(0, seq)` for an id of the in-memory
    /// history, the entry id `(ms, n)` for an id of a two-part event log position (Redis
    /// Streams).
    pub fn position(&self) -> (u64, u64) {
        (self.ms.unwrap_or(0), self.seq)
    }

    /// The two parts of a two-part position (`<epoch>-<ms>-<n>` on the wire).
    pub(crate) fn entry_parts(&self) -> Option<(u64, u64)> {
        self.ms.map(|ms| (ms, self.seq))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ms {
            None => write!(f, "{}-{}", Base36(self.epoch), self.seq),
            Some(ms) => write!(f, "{}-{ms}-{}", Base36(self.epoch), self.seq),
        }
    }
}

/// Parses the decimal `<ms>-<seq>` of a Redis stream entry id.
pub(crate) fn parse_entry(s: &str) -> Option<(u64, u64)> {
    let (ms, seq) = s.split_once('-')?;
    Some((decimal(ms)?, decimal(seq)?))
}

fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for EventId {
    type Err = MalformedEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, rest) = s.split_once('-').ok_or(MalformedEventId)?;
        let epoch = parse_base36(epoch).ok_or(MalformedEventId)?;
        match rest.split_once('-') {
            None => Ok(Self::new(epoch, decimal(rest).ok_or(MalformedEventId)?)),
            Some(_) => {
                let (ms, seq) = parse_entry(rest).ok_or(MalformedEventId)?;
                Ok(Self::entry(epoch, ms, seq))
            }
        }
    }
}

struct Base36(u64);

impl fmt::Display for Base36 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 13];
        let mut n = self.0;
        let mut i = buf.len();
        loop {
            i -= 1;
            let d = (n % 36) as u8;
            buf[i] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
            n /= 36;
            if n == 0 {
                break;
            }
        }
        // Only ASCII digits and letters were written.
        f.write_str(std::str::from_utf8(&buf[i..]).map_err(|_| fmt::Error)?)
    }
}

fn parse_base36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        acc.checked_mul(36)?.checked_add(u64::from(d))
    })
}

/// What a new subscriber sent as its `Last-Event-ID`, parsed once, where the request is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LastEventId {
    /// None: the stream starts with the next event.
    #[default]
    None,
    /// Resume after this event.
    After(EventId),
    /// Resume from the oldest event still kept (Mercure's `earliest`), in the history or,
    /// with an engine, in the store.
    #[cfg_attr(not(feature = "mercure"), allow(dead_code))]
    Oldest,
    /// Something that is no id of ours: the stream starts now, with a reset.
    Malformed,
}

impl LastEventId {
    /// Parses the header or query value (blank counts as none).
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        match raw.map(str::trim) {
            None | Some("") => Self::None,
            Some(raw) => raw.parse().map_or(Self::Malformed, Self::After),
        }
    }
}

impl From<Option<EventId>> for LastEventId {
    fn from(id: Option<EventId>) -> Self {
        id.map_or(Self::None, Self::After)
    }
}

/// A new epoch for a broadcaster: different across restarts and across broadcasters in one
/// process, without a random-number dependency.
pub(crate) fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // 40 bits keep the id short (8 base-36 digits) while making a collision across restarts
    // vanishingly unlikely.
    h.finish() & ((1 << 40) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (epoch, seq) in [
            (0, 0),
            (1, 1),
            (35, 36),
            ((1 << 40) - 1, u64::MAX),
            (u64::MAX, 7),
        ] {
            let id = EventId::new(epoch, seq);
            assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
            let id = EventId::entry(epoch, seq, epoch);
            assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "abc",
            "A-1",
            "a-1-2-3",
            "a-1-",
            "a--1",
            "a- 1",
            "a-+1",
            "a-99999999999999999999",
            "zzzzzzzzzzzzzz-1",
            "é-1",
            "a-1\n",
        ] {
            assert_eq!(bad.parse::<EventId>(), Err(MalformedEventId), "{bad:?}");
        }
    }

    #[test]
    fn epochs_differ() {
        assert_ne!(new_epoch(), new_epoch());
    }

    mod from_outside {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn any_last_event_id_parses_or_is_refused(raw in "\\PC{0,40}") {
                if let Ok(id) = raw.parse::<EventId>() {
                    // What parses prints back to something that parses to the same id.
                    prop_assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
                }
            }

            #[test]
            fn ids_round_trip(epoch in 0u64..(1 << 40), ms in any::<Option<u64>>(), seq: u64) {
                let id = match ms {
                    Some(ms) => EventId::entry(epoch, ms, seq),
                    None => EventId::new(epoch, seq),
                };
                prop_assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
            }
        }
    }
}
