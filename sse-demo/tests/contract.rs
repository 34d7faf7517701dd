//! The demo's event contract: the catalogue is consistent, the AsyncAPI document and the
//! TypeScript declarations match their committed snapshots in `sse-demo/contract/`, and the
//! AsyncAPI project's parser and `tsc --strict` accept them.
//!
//! After an intended change of a payload: `UPDATE_SNAPSHOTS=1 cargo test -p sse-demo --test
//! contract`, then review the diff of `sse-demo/contract/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sse_core::contract::{Catalogue, StreamServer};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo's events (the handlers are linked in through `app_config`, the presence counts
/// through `Presence::start`).
fn catalogue() -> Catalogue {
    let _ = (sse_demo::app_config, sse_demo::presence::Presence::start);
    Catalogue::linked().filter(|e| e.origin.starts_with("sse_demo::"))
}

/// The demo's stream, with the credentials its authorizer reads (a key of the demo's kind;
/// only the schemes it advertises matter here).
fn server() -> StreamServer {
    StreamServer::new("http", "127.0.0.1:2345", sse_demo::STREAM_PATH)
        .titled("sse-demo", "1.0.0")
        .authorized_by(&sse_demo::login::LoginKey::random().authorizer())
}

#[test]
fn event_catalogue() {
    sse_core::testing::check_catalogue();
    let names: Vec<&str> = catalogue().distinct().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "user_created",
            "user_deleted",
            "user_email_changed",
            "user_updated",
            "user_watchers"
        ]
    );
}

#[test]
fn asyncapi_matches_its_snapshot() {
    assert_snapshot(
        "sse-demo/contract/asyncapi.json",
        &catalogue().asyncapi_text(&server()),
    );
}

#[test]
fn typescript_matches_its_snapshot() {
    assert_snapshot("sse-demo/contract/events.d.ts", &catalogue().typescript());
}

#[test]
fn no_public_payload_has_an_email() {
    for event in catalogue().events() {
        let schema = event
            .schema
            .as_ref()
            .expect("every demo payload has a schema");
        if !event.private {
            assert!(
                !schema.to_string().contains("email"),
                "{} publishes an email to everyone: {schema}",
                event.name
            );
        }
    }
}

#[test]
#[ignore = "needs node (npm ci in tests/contract)"]
fn asyncapi_is_accepted_by_the_asyncapi_parser() {
    let dir = tempfile::tempdir().expect("temp dir");
    catalogue()
        .write_documents(dir.path(), &server())
        .expect("write");
    node(&[
        "asyncapi.mjs",
        dir.path().join("asyncapi.json").to_str().expect("utf-8"),
    ]);
}

#[test]
#[ignore = "needs node (npm ci in tests/contract)"]
fn typescript_declarations_pass_tsc_strict() {
    node(&["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"]);
}

/// The live page's script (`index.html`, a plain static file that the browser runs as it is)
/// is checked by `tsc --strict --checkJs` through its JSDoc: its imports of the client and of
/// the event declarations are mapped onto `client.d.ts` and the committed `events.d.ts`, so a
/// misspelled event name or payload field in the page fails here.
#[test]
#[ignore = "needs node (npm ci in tests/contract)"]
fn the_page_script_type_checks_against_events_d_ts() {
    const OPEN: &str = "<script type=\"module\">";
    let page = std::fs::read_to_string(root().join("sse-demo/src/static/index.html"))
        .expect("read index.html");
    let start = page
        .find(OPEN)
        .unwrap_or_else(|| panic!("index.html has no `{OPEN}` block"))
        + OPEN.len();
    let end = page[start..]
        .find("</script>")
        .unwrap_or_else(|| panic!("index.html: `{OPEN}` is never closed"))
        + start;

    let absolute = |path: &str| {
        let file = root().join(path);
        std::fs::canonicalize(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    };
    let tsconfig = serde_json::json!({
        "compilerOptions": {
            "strict": true,
            "allowJs": true,
            "checkJs": true,
            "noEmit": true,
            "target": "es2022",
            "module": "es2022",
            "moduleResolution": "bundler",
            "lib": ["es2022", "dom", "dom.iterable"],
            "paths": {
                "/api/sse/stream/client.js": [absolute("sse-core/assets/client.d.ts")],
                "/api/sse/stream/events.js": [absolute("sse-demo/contract/events.d.ts")],
            },
        },
        "files": ["page.js"],
    });
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("page.js"), &page[start..end]).expect("write page.js");
    let config = dir.path().join("tsconfig.json");
    std::fs::write(&config, tsconfig.to_string()).expect("write tsconfig.json");
    node(&[
        "node_modules/typescript/bin/tsc",
        "-p",
        config.to_str().expect("utf-8"),
    ]);
}

fn node(args: &[&str]) {
    let dir = root().join("tests/contract");
    let out = Command::new("node")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "node {args:?} failed:\n{text}");
    eprintln!("{text}");
}

/// Compares `actual` with the committed file, failing with a diff of the lines that differ;
/// `UPDATE_SNAPSHOTS=1` writes it instead.
fn assert_snapshot(path: &str, actual: &str) {
    let file = root().join(path);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&file, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_default();
    if expected == actual {
        return;
    }
    panic!(
        "{path} differs from what the code now publishes (a payload changed?):\n{}\n\
         If the change is intended: UPDATE_SNAPSHOTS=1 cargo test -p sse-demo --test contract, \
         and review the diff.",
        line_diff(&expected, actual)
    );
}

/// A unified-style diff: common prefix and suffix trimmed, the differing middle shown as
/// `-` and `+` lines with three lines of context.
fn line_diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = format!("@@ line {} @@\n", prefix + 1);
    for line in &old[prefix.saturating_sub(3)..prefix] {
        out.push_str(&format!("  {line}\n"));
    }
    for line in &old[prefix..old.len() - suffix] {
        out.push_str(&format!("- {line}\n"));
    }
    for line in &new[prefix..new.len() - suffix] {
        out.push_str(&format!("+ {line}\n"));
    }
    for line in new[new.len() - suffix..].iter().take(3) {
        out.push_str(&format!("  {line}\n"));
    }
    out
}
