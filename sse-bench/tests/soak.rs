//! The 60-second soak runs (`sse-bench soak`): no subscriber left, no event lost by a reading
//! client, server memory back within 64 MiB of where it started. CI runs them with the
//! ignored tests; the Redis one needs `redis-server` on the PATH.

fn soak(max_growth_mib: &str, extra: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-bench"))
        .args([
            "soak",
            "--seconds",
            "60",
            "--max-growth-mib",
            max_growth_mib,
            "--quiet",
        ])
        .args(extra)
        .output()
        .expect("sse-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("subscribers left: 0"), "{stdout}");
    assert!(stdout.contains("lost by reading clients: 0;"), "{stdout}");
    assert!(stdout.contains("soak: ok"), "{stdout}");
}

#[test]
#[ignore = "soak: 60 s"]
fn soak_in_memory() {
    soak("64", &[]);
}

#[test]
#[ignore = "soak: 60 s, needs redis-server"]
fn soak_with_redis_restarts() {
    // Memory follows the load's peak, not the time: release runs ended +102 MiB after 30 s
    // and +59 MiB after 120 s (peaks +106 and +102), the debug build +77 MiB after 60 s.
    // It is bounded, not a leak; why its peak is higher than in memory (+56 MiB after 30 s)
    // is not measured yet, so the bound is looser here.
    soak("128", &["--redis"]);
}
