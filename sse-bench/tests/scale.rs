//! `sse-bench scale` at a tiny size, on each engine: two instances and then one, every
//! subscriber connected, every event delivered once, the figures printed per instance. CI
//! runs them with the ignored tests; they need `redis-server` and `nats-server` on the PATH,
//! and PostgreSQL on 127.0.0.1:5432 (database `test`, role `postgres`).

fn scale(engine: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-bench"))
        .args([
            "scale",
            "--engine",
            engine,
            "--instances",
            "2",
            "--subs",
            "20",
        ])
        .args(["--rate", "20", "--seconds", "1", "--drain-max", "10"])
        .args(["--idle-seconds", "0.5", "--quiet"])
        .output()
        .expect("sse-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    stdout
}

fn assert_every_event_once(stdout: &str) {
    // The two-instance run, the one-instance run, and their comparison.
    assert!(stdout.contains("== 2 instances on"), "{stdout}");
    assert!(stdout.contains("== 1 instance on"), "{stdout}");
    assert!(stdout.contains("== 2 instances against 1"), "{stdout}");
    assert_eq!(
        stdout
            .matches("delivered / expected: 800 / 800; lost 0; duplicates 0;")
            .count()
            + stdout
                .matches("delivered / expected: 400 / 400; lost 0; duplicates 0;")
                .count(),
        2,
        "{stdout}"
    );
    // Each instance held its 20 subscribers.
    let held: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| 1 (publishes)") || l.starts_with("| 2 "))
        .collect();
    assert_eq!(held.len(), 3, "{stdout}");
    assert!(
        held.iter()
            .all(|l| l.split('|').nth(2).map(str::trim) == Some("20")),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs redis-server"]
fn scale_on_redis_delivers_every_event_once_on_every_instance() {
    assert_every_event_once(&scale("redis"));
}

#[test]
#[ignore = "needs nats-server"]
fn scale_on_nats_delivers_every_event_once_on_every_instance() {
    assert_every_event_once(&scale("nats"));
}

#[test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
fn scale_on_postgres_delivers_every_event_once_on_every_instance() {
    assert_every_event_once(&scale("postgres"));
}
