//! What the engine did per event, seen from Redis itself: `INFO commandstats` before and after
//! a run (calls and microseconds per command, those run by scripts included), over a raw
//! RESP connection.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Calls and microseconds of each command, since Redis started.
pub type CommandStats = BTreeMap<String, (u64, u64)>;

/// `INFO commandstats` of the Redis at `addr`.
pub fn read(addr: SocketAddr) -> io::Result<CommandStats> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"INFO commandstats\r\n")?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    // A bulk string: `$<len>\r\n<text>\r\n`.
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("Redis closed the connection"));
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n") {
            let len: usize = head
                .strip_prefix('$')
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| io::Error::other(format!("unexpected reply {head:?}")))?;
            if body.len() >= len {
                return Ok(parse(&body[..len]));
            }
        }
    }
}

/// `cmdstat_<name>:calls=N,usec=N,...` lines.
fn parse(text: &str) -> CommandStats {
    text.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            };
            Some((name.to_owned(), (field("calls")?, field("usec")?)))
        })
        .collect()
}

/// Calls and microseconds per event of each command between `before` and `after`, busiest
/// first: `xread 3.00 calls (4.1 µs)`.
pub fn per_event(before: &CommandStats, after: &CommandStats, events: u64) -> Vec<String> {
    let mut rows: Vec<(u64, String)> = after
        .iter()
        .filter_map(|(name, &(calls, usec))| {
            let (c0, u0) = before.get(name).copied().unwrap_or((0, 0));
            let (calls, usec) = (calls.saturating_sub(c0), usec.saturating_sub(u0));
            (calls > 0 && name != "info").then(|| {
                let e = events.max(1) as f64;
                (
                    usec,
                    format!(
                        "{name} {:.2} calls ({:.1} µs)",
                        calls as f64 / e,
                        usec as f64 / e
                    ),
                )
            })
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|r| r.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_per_event_between_two_readings() {
        let before = parse(
            "# Commandstats\r\ncmdstat_xread:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0\r\n",
        );
        let after = parse(
            "# Commandstats\r\ncmdstat_xread:calls=40,usec=200,usec_per_call=5.00\r\n\
             cmdstat_xadd:calls=10,usec=100,usec_per_call=10.00\r\n\
             cmdstat_info:calls=2,usec=9,usec_per_call=4.50\r\n",
        );
        assert_eq!(after.get("xadd"), Some(&(10, 100)));
        assert_eq!(
            per_event(&before, &after, 10),
            ["xread 3.00 calls (15.0 µs)", "xadd 1.00 calls (10.0 µs)"]
        );
    }
}
