//! Runs a node script of `sse-demo/e2e` (headless Chromium driven with playwright-core) and
//! reads what it prints, every wait bounded. The scripts print lines for the test (`LOG ...`,
//! `MEASURE name value`, ...), then `OK`; on a failure, the reason on stderr and a non-zero
//! exit code.
//!
//! Reads the script's output with `forward_lines` of `support/binary.rs`: a test that includes
//! this module includes that one too, as `mod binary`.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::binary::forward_lines;

/// `sse-demo/e2e`, after asserting that its node modules are installed.
fn e2e() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} first",
        dir.display()
    );
    dir
}

/// A running `node e2e/<script> <args>`; killed when dropped (when a test fails half-way).
pub struct Script {
    /// `tabs.mjs ["leader", ...]`, for messages.
    command: String,
    /// `[tabs]`, before each line it prints, echoed.
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<Vec<String>>>,
    limit: Duration,
    deadline: Instant,
    ok: bool,
}

impl Script {
    /// Starts `node e2e/<script> <args>`, which has `limit` to print all it prints. With
    /// `answers`, its stdin is a pipe for [`Script::answer`]; without, it is empty.
    pub fn start<S: AsRef<OsStr>>(
        script: &str,
        args: &[S],
        limit: Duration,
        answers: bool,
    ) -> Script {
        let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        let stdin = if answers {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = Command::new("node")
            .arg(e2e().join(script))
            .args(&args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node (is Node.js installed?)");
        let label = format!("[{}]", script.trim_end_matches(".mjs"));
        let lines = forward_lines(child.stdout.take().expect("piped stdout"));
        let stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn({
            let label = label.clone();
            move || {
                let lines = BufReader::new(stderr).lines().map_while(Result::ok);
                lines.inspect(|l| eprintln!("{label} {l}")).collect()
            }
        });
        Script {
            command: format!("{script} {args:?}"),
            label,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            limit,
            deadline: Instant::now() + limit,
            ok: false,
        }
    }

    /// The next line the script prints (echoed), or `None` once it closed its stdout. Panics
    /// if the script is still running at the end of its time.
    pub fn next_line(&mut self) -> Option<String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                println!("{} {line}", self.label);
                self.ok |= line == "OK";
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{} still running after {:?}", self.command, self.limit)
            }
        }
    }

    /// Writes `line` to the script's stdin (started with `answers`).
    pub fn answer(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with answers");
        writeln!(stdin, "{line}").unwrap_or_else(|err| panic!("answer {}: {err}", self.command));
    }

    /// Reads the rest of what the script prints, closes its stdin, gives it 10 s to exit,
    /// and asserts that it succeeded and printed `OK` (with its stderr if not); the lines read.
    pub fn finish(mut self) -> Vec<String> {
        let rest: Vec<String> = std::iter::from_fn(|| self.next_line()).collect();
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < end, "{} did not exit", self.command);
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = (self.stderr.take())
            .map(|errors| errors.join().unwrap_or_default())
            .unwrap_or_default();
        assert!(
            status.success() && self.ok,
            "{} failed ({status}):\n{}",
            self.command,
            stderr.join("\n")
        );
        rest
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `node e2e/<script> <args>` to its end (at most `limit`): the lines it printed, after
/// asserting that it succeeded and printed `OK`.
pub fn run<S: AsRef<OsStr>>(script: &str, args: &[S], limit: Duration) -> Vec<String> {
    Script::start(script, args, limit, false).finish()
}

/// The value in the script's `MEASURE name value` line.
pub fn measure<'a>(lines: &'a [String], name: &str) -> &'a str {
    let prefix = format!("MEASURE {name} ");
    (lines.iter().find_map(|l| l.strip_prefix(&prefix)))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}
