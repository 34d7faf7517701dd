//! A tiny real run of the load tool against both servers, so the tool cannot rot: 10
//! subscribers, 20 events, every one delivered exactly once.

use std::path::PathBuf;
use std::time::Duration;

use sse_bench::presets::{self, Overrides, Preset};
use sse_bench::run::{self, Env, RunReport, ServerSpec};
use sse_bench::server::{Impl, ServeArgs, ServerProcess};

fn env() -> Env {
    Env {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_sse-bench")),
        serve: ServeArgs::new(Impl::Ours),
        server_cpus: None,
        load_cores: 2.0,
        client_threads: 2,
        conns_per_addr: 4,
        read_buf: 4096,
        events_path: "/events".into(),
        publish_path: "/publish".into(),
        body_template: None,
        nofile: sse_bench::procfs::raise_nofile_limit(),
        verbose: false,
    }
}

fn scenario() -> run::Scenario {
    let o = Overrides {
        subs: Some(10),
        events: Some(20),
        rate: Some(400.0),
        publishers: Some(2),
        settle: Some(0.05),
        drain_max: Some(5.0),
        ..Overrides::default()
    };
    presets::scenarios(Preset::Fanout, &o).remove(0)
}

fn assert_complete(r: &RunReport) {
    assert_eq!(r.readers, 10, "{r:#?}");
    assert_eq!(r.published, 20, "{r:#?}");
    assert_eq!((r.delivered, r.expected), (200, 200), "{r:#?}");
    assert_eq!(
        (r.lost, r.duplicates, r.foreign, r.resets),
        (0, 0, 0, 0),
        "{r:#?}"
    );
    assert_eq!(r.latency.count(), 200);
    assert!(r.latency.quantile(0.99) > 0);
    assert!(r.rss_connected > 0 && r.server_cpu.is_finite(), "{r:#?}");
}

#[test]
fn both_servers_deliver_every_event_once() {
    let (env, scenario) = (env(), scenario());
    for imp in [Impl::Ours, Impl::Naive] {
        let r = run::run(&ServerSpec::Spawn(imp), &scenario, &env).expect("run");
        assert_eq!(r.label, imp.to_string());
        assert_complete(&r);
    }
}

#[test]
fn a_running_server_is_found_by_its_port() {
    let env = env();
    let server = ServerProcess::spawn(&env.exe, &ServeArgs::new(Impl::Ours), None).expect("server");
    let spec = ServerSpec::External {
        addr: server.addr,
        host: server.addr.to_string(),
        pid: None,
    };
    let r = run::run(&spec, &scenario(), &env).expect("run");
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_complete(&r);
}

#[test]
fn idle_connections_and_stalled_clients_are_held() {
    let mut s = presets::scenarios(
        Preset::Idle,
        &Overrides {
            subs: Some(6),
            stalled: Some(2),
            seconds: Some(0.2),
            settle: Some(0.05),
            ..Overrides::default()
        },
    )
    .remove(0);
    s.hold = Duration::from_millis(200);
    let r = run::run(&ServerSpec::Spawn(Impl::Bare), &s, &env()).expect("run");
    assert_eq!(
        (r.readers, r.stalled, r.connect_failures),
        (6, 2, 0),
        "{r:#?}"
    );
    // The first comment of every stream (`: connected`) was parsed.
    assert!(r.comments >= 6, "{r:#?}");
}

#[test]
fn targeted_events_reach_only_their_topic() {
    let o = Overrides {
        subs: Some(5),
        events: Some(20),
        rate: Some(400.0),
        publishers: Some(2),
        settle: Some(0.05),
        drain_max: Some(5.0),
        idle_baseline: Some(0.2),
        ..Overrides::default()
    };
    let s = presets::scenarios(Preset::Targeted, &o).remove(0);
    let env = env();
    for imp in [Impl::Ours, Impl::Naive] {
        let r = run::run(&ServerSpec::Spawn(imp), &s, &env).expect("run");
        // Each event went to one subscriber: 20 deliveries, not 100.
        assert_eq!((r.readers, r.published), (5, 20), "{imp}: {r:#?}");
        assert_eq!(
            (r.delivered, r.expected, r.lost),
            (20, 20, 0),
            "{imp}: {r:#?}"
        );
        assert_eq!((r.duplicates, r.foreign), (0, 0), "{imp}: {r:#?}");
        // The kernel counts CPU time in 10 ms ticks: 20 events may cost less than one.
        assert!(
            r.cpu_per_event_us.is_finite() && r.cpu_per_event_us >= 0.0,
            "{imp}: {r:#?}"
        );
        // The idle cost was measured, and subtracting it leaves no more than the whole.
        assert!(r.idle_cpu_share.is_finite(), "{imp}: {r:#?}");
        assert!(
            r.cpu_per_event_net_us <= r.cpu_per_event_us,
            "{imp}: {r:#?}"
        );
    }
}

fn bench(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-bench"))
        .args(args)
        .output()
        .expect("sse-bench runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn resume_storm_runs_both_servers() {
    let (ok, out) = bench(&[
        "resume-storm",
        "--compare",
        "--no-pin",
        "--quiet",
        "--fill",
        "300",
        "--back",
        "200",
        "--conns",
        "5",
        "--rate",
        "50",
        "--seconds",
        "0.5",
    ]);
    assert!(ok, "{out}");
    for figure in [
        "publish p50 during (ms)",
        "server RSS per hostile connection (KiB)",
    ] {
        assert!(out.contains(figure), "{out}");
    }
    assert!(out.contains("resumed 5, resets 0, subscribers 5"), "{out}");
}

#[test]
fn a_short_soak_passes() {
    let (ok, out) = bench(&[
        "soak",
        "--no-pin",
        "--quiet",
        "--seconds",
        "2",
        "--wave",
        "10",
        "--wave-seconds",
        "0.5",
        "--stalled",
        "3",
        "--storm-publishers",
        "2",
        "--storm-seconds",
        "0.3",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("subscribers left: 0") && out.contains("soak: ok"),
        "{out}"
    );
}

#[test]
fn mercure_and_the_annotation_deliver_every_event_to_both_endpoints() {
    let (ok, out) = bench(&[
        "mercure",
        "--subs",
        "4",
        "--rate",
        "200",
        "--seconds",
        "0.2",
        "--burst",
        "100",
        "--rounds",
        "1",
        "--concurrency",
        "2",
    ]);
    assert!(ok, "{out}");
    // 40 steady and 100 burst publishes per path, each to the 4 subscribers; the same data
    // bytes on both paths.
    for path in [
        "`#[emit_event]` (`POST /emit`) | 140 |",
        "Mercure (`POST /.well-known/mercure`) | 140 |",
    ] {
        assert!(out.contains(path), "{out}");
    }
    assert_eq!(out.matches("| 560 / 560 | 0 |").count(), 2, "{out}");
    assert!(
        out.contains("data bytes per delivery 200.0 / 200.0"),
        "{out}"
    );
    assert!(
        out.contains("duplicates 0, events without a probe 0, resets 0, subscriber errors 0"),
        "{out}"
    );
    assert!(out.contains("mercure: ok"), "{out}");
}
