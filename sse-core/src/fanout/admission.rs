//! The subscriber limits: a place per open endpoint stream, in total and per client address
//! (an IPv6 client counted per /64, the block one host usually has).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::InvalidAddrBlock;

/// Open endpoint streams, in total and per client address, against the configured limits.
pub(crate) struct Limits {
    max_total: usize,
    max_per_ip: usize,
    admitted: Mutex<Admitted>,
}

#[derive(Default)]
struct Admitted {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A stream admitted under the subscriber limits; releases its place when dropped.
pub(crate) struct Admission {
    limits: Arc<Limits>,
    ip: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut admitted = self.limits.lock();
        admitted.total = admitted.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = admitted.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    admitted.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Which subscriber limit a request ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverLimit {
    Total,
    PerIp,
}

impl Limits {
    /// At most `max_total` streams, and `max_per_ip` from one address (or IPv6 /64).
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            admitted: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Admitted> {
        // Every critical section leaves the counts consistent.
        self.admitted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for one more endpoint stream from `ip`, if the limits allow it.
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Admission, OverLimit> {
        let ip = ip.map(bucket);
        let mut admitted = self.lock();
        if admitted.total >= self.max_total {
            return Err(OverLimit::Total);
        }
        if let Some(ip) = ip {
            let n = admitted.per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                if *n == 0 {
                    admitted.per_ip.remove(&ip);
                }
                return Err(OverLimit::PerIp);
            }
            *n += 1;
        }
        admitted.total += 1;
        drop(admitted);
        Ok(Admission {
            limits: self.clone(),
            ip,
        })
    }
}

/// The key a client address is counted under: an IPv4 address as it is (also when written
/// as IPv4-mapped IPv6), an IPv6 address by its /64 (one host can have 2^64 of them).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The one header through which a [trusted proxy](crate::BroadcasterBuilder::trusted_proxies)
/// names the client, for [`BroadcasterBuilder::forwarded_header`](crate::BroadcasterBuilder::forwarded_header).
///
/// Only the chosen header is read: a proxy passes the headers it does not set through from the
/// client untouched, so reading any other would let the client choose its own address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, which nginx, HAProxy and most load balancers append to: the
    /// right-most address that is not a trusted proxy is the client. The default.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), read like `X-Forwarded-For` from its `for=` parameters.
    Forwarded,
    /// `X-Real-IP`: one address, which the proxy must set (replace), never pass through.
    XRealIp,
}

/// A block of addresses such as `10.0.0.0/8` or `fd00::/8` (a lone address is its own
/// block): the reverse proxies whose forwarded headers are believed, for
/// [`BroadcasterBuilder::trusted_proxies`](crate::BroadcasterBuilder::trusted_proxies).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AddrBlock {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for AddrBlock {
    type Err = InvalidAddrBlock;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidAddrBlock(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(invalid)?,
        };
        Ok(Self { addr, prefix })
    }
}

impl AddrBlock {
    /// Whether `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Debug for AddrBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(bucket(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn address_blocks() {
        let block: AddrBlock = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.2.3.4")) && !block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.9.9.9")));
        let one: AddrBlock = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: AddrBlock = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: AddrBlock = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<AddrBlock>().is_err(), "{bad}");
        }
    }
}
