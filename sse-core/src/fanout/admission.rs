//! The subscriber limits: a place per open endpoint stream, in total and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::builder::Config;

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
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            max_total: config.max_subscribers,
            max_per_ip: config.max_subscribers_per_ip,
            admitted: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Admitted> {
        // Every critical section leaves the counts consistent.
        self.admitted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for one more endpoint stream from `ip`, if the limits allow it.
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Admission, OverLimit> {
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
