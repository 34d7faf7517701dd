//! Several instances started at the same moment on one fresh database, as a deployment starts
//! them: every one must come up and serve (issue 18).

#[path = "support/binary.rs"]
#[allow(dead_code)] // shared with shutdown.rs and redis.rs
mod binary;
#[path = "support/postgres.rs"]
mod postgres;

use std::ffi::OsStr;

use binary::{request, Demo};
use postgres::TestDatabase;

/// How many times each race is run: it was lost in four runs out of six.
const RUNS: usize = 10;

/// Starts two instances on `db` at the same moment; `Err` says how they failed to come up or
/// to serve. Serving means: both list the users, and a user created through one is listed by
/// the other.
fn two_together(db: &OsStr, run: usize) -> Result<(), String> {
    let (a, b) = (Demo::spawn(db, 0, &[]), Demo::spawn(db, 0, &[]));
    let (a, b) = match (a.try_ready(), b.try_ready()) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let outcome = |started: Result<Demo, String>| started.err().unwrap_or("up".into());
            return Err(format!("first: {}; second: {}", outcome(a), outcome(b)));
        }
    };
    let name = format!("ada{run}");
    let created = request(
        a.addr,
        "POST",
        "/api/v1/users",
        &format!(r#"{{"username":"{name}","email":"{name}@example.com"}}"#),
    );
    if !created.starts_with("HTTP/1.1 201") {
        return Err(format!("the first did not create a user: {created}"));
    }
    let listed = request(b.addr, "GET", "/api/v1/users", "");
    if !(listed.starts_with("HTTP/1.1 200") && listed.contains(&name)) {
        return Err(format!("the second does not list {name}: {listed}"));
    }
    Ok(())
}

/// Runs [`two_together`] [`RUNS`] times on the databases `fresh` makes, one per run, and
/// fails with every failure.
fn race(mut fresh: impl FnMut(usize) -> (String, Box<dyn std::any::Any>)) {
    let failures: Vec<String> = (0..RUNS)
        .filter_map(|run| {
            // The guard keeps the database until both instances are gone.
            let (db, _guard) = fresh(run);
            two_together(db.as_ref(), run)
                .err()
                .map(|err| format!("run {run}: {err}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {RUNS} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn two_instances_started_together_both_serve_sqlite() {
    race(|_| {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display());
        (url, Box::new(dir))
    });
}

#[test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]
fn two_instances_started_together_both_serve_postgres() {
    race(|_| {
        let db = TestDatabase::create();
        (db.url.clone(), Box::new(db))
    });
}
