//! What the load tool reads from `/proc` and asks of the OS: CPU time and RSS of a process,
//! CPU time of its own threads, the open-file limit, CPU pinning, the CPU model, which process
//! listens on a port, and the command line that repeats a run.

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;

/// CPU time and resident memory of a process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    /// User + system CPU seconds, all threads, since the process started.
    pub cpu_secs: f64,
    /// The system (kernel) part of `cpu_secs`: syscalls, and on loopback most of the TCP
    /// stack.
    pub sys_secs: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

/// Clock ticks per second of the `/proc/<pid>/stat` CPU fields.
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` if the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_cpu_ticks(&stat)?;
    let sys = stat_field(&stat, 12)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_secs: ticks as f64 / clock_ticks(),
        sys_secs: sys as f64 / clock_ticks(),
        rss_bytes: status_rss_kib(&status)? * 1024,
    })
}

/// utime + stime from a `stat` line. The command name, in parentheses, may hold spaces, so
/// fields are counted after its closing parenthesis.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // After the name, state is field 3 of the stat(5) numbering: utime (14) is at 11, stime
    // (15) at 12.
    Some(stat_field(stat, 11)? + stat_field(stat, 12)?)
}

/// Field `index` counted from the state field, after the name's closing parenthesis.
fn stat_field(stat: &str, index: usize) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(index)?.parse().ok()
}

fn stat_comm(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    stat.get(open + 1..close)
}

fn status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds of each of this process's threads whose name starts with `prefix`.
pub fn own_threads_cpu(prefix: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let (Some(comm), Some(ticks)) = (stat_comm(&stat), stat_cpu_ticks(&stat)) {
            if comm.starts_with(prefix) {
                let tid = entry.file_name().to_string_lossy().into_owned();
                out.insert(format!("{comm}#{tid}"), ticks as f64 / clock_ticks());
            }
        }
    }
    out
}

/// Raises this process's open-file limit as far as allowed (children inherit it); returns it.
pub fn raise_nofile_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// The hard open-file limit: how far [`raise_nofile_limit`] can go.
pub fn nofile_hard_limit() -> u64 {
    rlimit::Resource::NOFILE
        .get()
        .map(|(_, hard)| hard)
        .unwrap_or(1024)
}

/// Whether `taskset` can be run.
pub fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Pins every thread of this process, and the threads it starts later, to `cpus` (a
/// `taskset` list such as `1` or `1-3`).
pub fn pin_self(cpus: &str) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The process listening on TCP `port` (IPv4 or IPv6), found through the socket's inode.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Inodes of sockets listening on `port` in a `/proc/net/tcp{,6}` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let matches = u16::from_str_radix(local_port, 16).ok()? == port && *f.get(3)? == LISTEN;
            matches.then(|| f.get(9)?.parse().ok()).flatten()
        })
        .collect()
}

/// The 1-minute load average, to say how busy the machine was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// With `taskset` and at least 2 cores (and unless `no_pin`): pins this process to CPUs 1..,
/// and returns the CPU list for started servers (`0`) and the cores left to the load tool.
pub(crate) fn pin_cores(no_pin: bool) -> Result<(Option<String>, usize), String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if no_pin || cores < 2 || !have_taskset() {
        return Ok((None, cores));
    }
    let load_cpus = if cores == 2 {
        "1".to_owned()
    } else {
        format!("1-{}", cores - 1)
    };
    if !pin_self(&load_cpus) {
        return Err("taskset could not pin the load tool".into());
    }
    Ok((Some("0".to_owned()), cores - 1))
}

/// How this run can be repeated: the command line, as a `cargo run` of the release build.
pub(crate) fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.insert(0, "cargo run -p sse-bench --release --".into());
    args.join(" ")
}

/// The CPU's model name, from `/proc/cpuinfo`.
pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 99 1000 200";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
        assert_eq!(stat_comm(stat), Some("my (odd) name"));
    }

    #[test]
    fn rss_from_status() {
        assert_eq!(
            status_rss_kib("Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    2048 kB\n"),
            Some(2048)
        );
        assert_eq!(status_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_secs >= 0.0);
    }

    #[test]
    fn listening_sockets_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inodes(table, 8080), vec![4242]);
        assert!(listening_inodes(table, 8081).is_empty());
    }

    #[test]
    fn finds_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
    }
}
