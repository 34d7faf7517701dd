//! The subscriber limits: a place per open endpoint stream, in total and per peer address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, MutexGuard, PoisonError};

use crate::broadcaster::Shared;

#[derive(Default)]
pub(crate) struct Admitted {
    pub(crate) total: usize,
    pub(crate) per_ip: HashMap<IpAddr, usize>,
}

/// A stream admitted under the subscriber limits; releases its place when dropped.
pub(crate) struct Admission {
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut admitted = self.shared.admitted();
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

impl Shared {
    fn admitted(&self) -> MutexGuard<'_, Admitted> {
        self.admitted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for one more endpoint stream from `ip`, if the limits allow it.
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Admission, OverLimit> {
        let mut admitted = self.admitted();
        if admitted.total >= self.config.max_subscribers {
            return Err(OverLimit::Total);
        }
        if let Some(ip) = ip {
            let n = admitted.per_ip.entry(ip).or_insert(0);
            if *n >= self.config.max_subscribers_per_ip {
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
            shared: self.clone(),
            ip,
        })
    }
}
