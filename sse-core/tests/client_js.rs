//! The browser client's own unit tests (`sse-core/assets/test/*.test.mjs`), run with node's
//! test runner so that `cargo test` runs them too.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs node (20 or later)"]
fn client_js_unit_tests_pass_in_node() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/test");
    let mut child = Command::new("node")
        .arg("--test")
        // The file itself, not the folder: node 20 and 22 read a folder argument differently.
        .arg(dir.join("client.test.mjs"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run node (is Node.js installed?)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("node --test still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "node --test failed:\n{stdout}");
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
