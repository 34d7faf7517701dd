//! Latency histograms and per-subscriber delivery accounting.

/// Sub-buckets per power of two: 2^6, so a reported percentile is within 1/64 (1.6 %) above
/// the true value.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

/// A log-linear histogram of non-negative integers (microseconds here).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    let mantissa = (v >> shift) - SUB;
    ((u64::from(shift) + 1) * SUB + mantissa) as usize
}

/// The largest value that falls into bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let mantissa = i % SUB;
    let low = (SUB + mantissa) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        let i = bucket(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Adds every value counted by `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value counted (exact), or 0.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The `q` quantile (0..=1), rounded up to its bucket's upper edge (never under-reported),
    /// or 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max);
            }
        }
        self.max
    }
}

/// Which sequence numbers one subscriber received: a growable bitset, so duplicates and
/// reordering (several publishers race) are told apart from loss.
#[derive(Clone, Debug, Default)]
pub struct SeqTally {
    seen: Vec<u64>,
    unique: u64,
    duplicates: u64,
    out_of_range: u64,
}

/// Sequence numbers above this are not from this run (a stale or foreign event).
const MAX_SEQ: u64 = 1 << 32;

impl SeqTally {
    /// Records one delivery of `seq`; true if it is the first.
    pub fn record(&mut self, seq: u64) -> bool {
        if seq == 0 || seq > MAX_SEQ {
            self.out_of_range += 1;
            return false;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize((word + 1).next_power_of_two(), 0);
        }
        let mask = 1u64 << bit;
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            false
        } else {
            self.seen[word] |= mask;
            self.unique += 1;
            true
        }
    }

    /// Distinct sequence numbers received.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Deliveries of a sequence number already received.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Deliveries whose sequence number cannot be from this run.
    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }
}

/// Where the probe of a benchmark event starts: `bench:<seq>:<sent_us>`. It may sit in any
/// string of the payload, so events of any server (the demo's, say) can carry it.
pub const PROBE_PREFIX: &[u8] = b"bench:";

/// Writes the probe for event `seq` sent at `sent_us`.
pub fn probe(seq: u64, sent_us: u64) -> String {
    format!("bench:{seq}:{sent_us}")
}

/// Finds the probe in an event's data: `(seq, sent_us)`.
pub fn find_probe(finder: &memchr::memmem::Finder<'_>, data: &[u8]) -> Option<(u64, u64)> {
    let start = finder.find(data)? + PROBE_PREFIX.len();
    let (seq, rest) = parse_u64(&data[start..])?;
    let rest = rest.strip_prefix(b":")?;
    let (sent, _) = parse_u64(rest)?;
    Some((seq, sent))
}

fn parse_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let v = s[..digits]
        .iter()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    Some((v, &s[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev_high = None;
        for i in 0..bucket(u64::MAX) {
            let high = bucket_high(i);
            if let Some(p) = prev_high {
                assert_eq!(bucket(p + 1), i, "bucket {i}");
            }
            assert_eq!(bucket(high), i);
            prev_high = Some(high);
        }
        for v in [0, 1, 63, 64, 65, 127, 128, 1000, 123_456, u64::MAX / 3] {
            let high = bucket_high(bucket(v));
            assert!(
                high >= v && (high - v) as f64 <= v as f64 / 64.0 + 1.0,
                "{v}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        let p50 = h.quantile(0.5);
        assert!((500..=508).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(h.quantile(0.0), 1);
    }

    #[test]
    fn merge_adds_counts() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for v in 0..10 {
            a.record(v);
        }
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 11);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.quantile(0.5), 5);
        assert_eq!(a.quantile(1.0), 1_000_000);
    }

    #[test]
    fn tally_tells_duplicates_and_reordering_from_loss() {
        let mut t = SeqTally::default();
        for seq in [1, 3, 2, 3, 5, 1000, 0, MAX_SEQ + 1] {
            t.record(seq);
        }
        assert_eq!(t.unique(), 5);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.out_of_range(), 2);
    }

    #[test]
    fn probes_are_found_anywhere() {
        let f = memchr::memmem::Finder::new(PROBE_PREFIX);
        let p = probe(42, 1_234_567);
        let ours = format!(r#"{{"probe":"{p}","pad":"xx"}}"#);
        assert_eq!(find_probe(&f, ours.as_bytes()), Some((42, 1_234_567)));
        let envelope = format!(r#"{{"event":"tick","data":{ours}}}"#);
        assert_eq!(find_probe(&f, envelope.as_bytes()), Some((42, 1_234_567)));
        for bad in [
            "",
            "bench:",
            "bench:1",
            "bench:1:",
            "bench:x:1",
            "{\"id\":1}",
        ] {
            assert_eq!(find_probe(&f, bad.as_bytes()), None, "{bad:?}");
        }
    }
}
