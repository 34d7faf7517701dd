//! What the workspace's tests share, in one place: private engine servers ([`servers`]), a
//! TLS test CA ([`tls`]) and the SSE reader every test reads streams with ([`sse`]).
//!
//! A dev-dependency only; never published. Every wait in it is bounded by [`WAIT`], and a
//! wait that runs out fails the test with a message saying what did not happen.

pub mod servers;
pub mod sse;
pub mod tls;

use std::time::Duration;

/// How long any single wait in the tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);
