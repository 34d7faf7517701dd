//! A fresh PostgreSQL database for one test, created on the local server and dropped when the
//! guard is dropped. Tests using it are `#[ignore = "needs PostgreSQL on 127.0.0.1:5432"]`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

/// The server and role the tests use, without a database: `SSE_DEMO_TEST_POSTGRES`, or the
/// local server with trust authentication that `.ci/run` sets up.
fn server() -> String {
    std::env::var("SSE_DEMO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of its own; dropped (with any connection still open to it) when this is.
pub struct TestDatabase {
    name: String,
    /// The URL to give the demo.
    pub url: String,
}

impl TestDatabase {
    pub fn create() -> TestDatabase {
        // Unique across the test binaries running at once and the tests of one binary.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "sse_demo_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin(format!("CREATE DATABASE {name}"));
        let url = format!("{}/{name}", server());
        TestDatabase { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs `sql` on the `test` database, from a thread of its own, so that it works from a
/// synchronous test and from within an async one alike.
fn admin(sql: String) {
    let url = format!("{}/test", server());
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| err.to_string())?;
        runtime
            .block_on(async {
                let mut conn = PgConnection::connect(&url).await?;
                sqlx::raw_sql(&sql).execute(&mut conn).await?;
                conn.close().await
            })
            .map_err(|err| format!("{sql} on {url}: {err}"))
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("PostgreSQL: {err}"),
        Err(_) => panic!("PostgreSQL: the admin thread panicked"),
    }
}
