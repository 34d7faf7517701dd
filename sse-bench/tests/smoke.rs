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
