//! The page in headless Chromium, driven by `e2e/browser.mjs`, against the real binary,
//! including a restart of the server while the page stays open; its "View as user…" and
//! presence counts, driven by `e2e/viewer.mjs`.

#[path = "support/binary.rs"]
#[allow(dead_code)] // shared with shutdown.rs, which uses the stream helpers
mod binary;
#[path = "support/proxy.rs"]
mod proxy;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use binary::{forward_lines, Demo};
use proxy::Proxy;

/// Kills the browser script if the test fails half-way.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
#[ignore = "needs chromium and node_modules in sse-demo/e2e (see .ci/run)"]
fn page_follows_changes_live_and_recovers_after_a_restart() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} first",
        e2e.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    let screenshot = dir.path().join("page.png");

    let mut server = Some(Demo::start(&db, 0));
    let (url, port) = server
        .as_ref()
        .map(|s| (s.url.clone(), s.addr.port()))
        .expect("started");
    // The page goes through the proxy, so that its connection can be dropped while the server
    // keeps running.
    let proxy = Proxy::start(server.as_ref().expect("started").addr);
    let page_url = format!("http://{}/", proxy.addr);

    let mut child = Command::new("node")
        .arg(e2e.join("browser.mjs"))
        .arg(&page_url)
        .arg(&url)
        .arg(&screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (is Node.js installed?)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let lines = forward_lines(child.stdout.take().expect("piped stdout"));
    let stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let lines = BufReader::new(stderr).lines().map_while(Result::ok);
        lines
            .inspect(|l| eprintln!("[browser] {l}"))
            .collect::<Vec<_>>()
    });
    let mut script = Script(child);

    let deadline = Instant::now() + Duration::from_secs(150);
    let mut shot: Option<PathBuf> = None;
    let mut ok = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("browser script still running after 150 s"),
        };
        println!("[browser] {line}");
        let reply = match line.as_str() {
            "CUT" => {
                proxy.cut(true);
                Some("DROPPED".to_owned())
            }
            "RESUME" => {
                proxy.resume();
                Some("RESUMED".to_owned())
            }
            "STOP" => {
                let took = server
                    .take()
                    .expect("the server runs")
                    .stop(Duration::from_secs(3));
                println!("server stopped in {took:?}");
                Some("STOPPED".to_owned())
            }
            "START" => {
                let restarted = Demo::start(&db, port);
                assert_eq!(restarted.url, url, "restarted on the same address");
                server = Some(restarted);
                Some(format!("STARTED {url}"))
            }
            "OK" => {
                ok = true;
                None
            }
            other => {
                if let Some(path) = other.strip_prefix("SCREENSHOT ") {
                    shot = Some(PathBuf::from(path));
                }
                None
            }
        };
        if let Some(reply) = reply {
            writeln!(stdin, "{reply}").expect("answer the browser script");
        }
    }
    drop(stdin);

    let status = {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = script.0.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < end, "browser script did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let stderr = errors.join().unwrap_or_default();
    if let Some(shot) = &shot {
        println!("screenshot: {}", shot.display());
        if let Some(keep) = std::env::var_os("SSE_DEMO_ARTIFACTS") {
            let kept = Path::new(&keep).join("sse-demo-page.png");
            std::fs::copy(shot, &kept).expect("copy the screenshot");
            println!("screenshot kept at {}", kept.display());
        }
    }
    assert!(
        status.success() && ok,
        "browser script failed ({status}):\n{}",
        stderr.join("\n")
    );
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "no screenshot at {}", screenshot.display());
    if let Some(server) = server {
        server.stop(Duration::from_secs(3));
    }
}

/// Runs `node viewer.mjs <scenario> <url>` to its end (at most 120 s); its stdout lines, after
/// asserting that it printed `OK`.
fn viewer_script(scenario: &str, url: &str) -> Vec<String> {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} first",
        e2e.display()
    );
    let mut child = Command::new("node")
        .arg(e2e.join("viewer.mjs"))
        .args([scenario, url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (is Node.js installed?)");
    let lines = forward_lines(child.stdout.take().expect("piped stdout"));
    let stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        (BufReader::new(stderr).lines().map_while(Result::ok)).collect::<Vec<_>>()
    });
    let script = Script(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                println!("[viewer] {line}");
                out.push(line);
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("viewer.mjs still running after 120 s"),
        }
    }
    drop(script);
    let errors = errors.join().unwrap_or_default();
    assert!(
        out.iter().any(|l| l == "OK"),
        "viewer.mjs {scenario} failed:\n{}",
        errors.join("\n")
    );
    out
}

/// The milliseconds a `MEASURE name ms` line of the script reports.
fn measured_ms(lines: &[String], name: &str) -> u64 {
    let prefix = format!("MEASURE {name} ");
    (lines.iter().find_map(|l| l.strip_prefix(&prefix)))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
        .parse()
        .unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
#[ignore = "needs chromium and node_modules in sse-demo/e2e (see .ci/run)"]
fn viewing_as_a_user_shows_her_new_email_live_and_an_anonymous_page_never_any() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Demo::start_with(dir.path().join("demo.db"), 0, &["--demo-login"]);
    let out = viewer_script("view-as", &server.url);
    // A private event, not a poll: within the time an event takes, well under a second.
    assert!(measured_ms(&out, "email_shown_ms") < 2000, "{out:?}");
    server.stop(Duration::from_secs(3));
}

#[test]
#[ignore = "needs chromium and node_modules in sse-demo/e2e (see .ci/run)"]
fn a_page_watching_a_user_is_counted_on_other_pages_until_it_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Without --demo-login: the script also checks that "View as" is not offered.
    let server = Demo::start(dir.path().join("demo.db"), 0);
    let out = viewer_script("presence", &server.url);
    // Counted at the next presence tick (every 500 ms), published as an event; and uncounted
    // as soon: the closed page's connection ends its stream at once (no waiting for a
    // keep-alive write to fail, 5 s apart).
    assert!(measured_ms(&out, "watcher_counted_ms") < 3000, "{out:?}");
    assert!(measured_ms(&out, "watcher_gone_ms") < 3000, "{out:?}");
    server.stop(Duration::from_secs(3));
}
