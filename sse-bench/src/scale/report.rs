//! Printing `scale`'s figures: a Markdown table per run (a row per instance), the overall
//! account under it, and the comparison of N instances against one.

use std::fmt::Write as _;

use super::{engine_name, quantiles_ms, PhaseReport, ScaleArgs};
use crate::engines::Backend;
use crate::report::render;

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// µs of `cpu` seconds per one of `n`, or `n/a`.
fn per(cpu: f64, n: u64) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        cpu * 1e6 / n as f64
    }
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.2}")
    }
}

/// One run's table and account.
pub(super) fn phase(r: &PhaseReport, args: &ScaleArgs) -> String {
    let engine = engine_name(args.engine);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== {} on {engine}: {} subscribers ({} per instance), {} ev/s for {} s, {} B, \
         publisher on instance 1; load average before {:.2} ==",
        r.label,
        r.asked,
        r.asked / r.instances.len().max(1),
        args.rate,
        args.seconds,
        args.payload_bytes,
        r.load_average
    );
    let mut rows = vec![[
        "instance",
        "subscribers held",
        "RSS per connection (B)",
        "RSS connected / peak (MiB)",
        "server CPU (s)",
        "deliveries",
        "server CPU µs / delivery",
        "server CPU µs / event",
    ]
    .map(str::to_owned)
    .to_vec()];
    for (i, inst) in r.instances.iter().enumerate() {
        rows.push(vec![
            format!("{}{}", i + 1, if i == 0 { " (publishes)" } else { "" }),
            inst.held.to_string(),
            format!("{:.0}", inst.rss_per_conn()),
            format!("{} / {}", mib(inst.rss_connected), mib(inst.rss_peak)),
            format!("{:.2}", inst.cpu),
            inst.delivered.to_string(),
            us(per(inst.cpu, inst.delivered)),
            us(per(inst.cpu, r.published)),
        ]);
    }
    if r.instances.len() > 1 {
        rows.push(vec![
            "all".into(),
            r.instances.iter().map(|i| i.held).sum::<u64>().to_string(),
            String::new(),
            String::new(),
            format!("{:.2}", r.servers_cpu),
            r.loads.delivered.to_string(),
            us(per(r.servers_cpu, r.loads.delivered)),
            us(per(r.servers_cpu, r.published)),
        ]);
    }
    out.push_str(&render(&rows, true));
    let (p50, p99) = quantiles_ms(&r.loads.latency);
    let l = &r.loads;
    let _ = writeln!(
        out,
        "delivered / expected: {} / {}; lost {}; duplicates {}; sse-reset events {}; readers \
         that lost events {}",
        l.delivered, r.expected, r.lost, l.duplicates, l.resets, l.readers_with_loss
    );
    let _ = writeln!(
        out,
        "publish-to-delivery latency: p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        l.latency.max() as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "published: {} events ({:.1} ev/s reached), {} failed",
        r.published, r.publish_rate, r.publish_failed
    );
    let side = r.servers_cpu + r.engine_cpu;
    let _ = writeln!(
        out,
        "engine ({}) CPU: {:.2} s, {} µs per event, {:.0} % of the servers' and \
         engine's CPU ({:.2} s); servers + engine: {} µs per delivery",
        match args.engine {
            Backend::Postgres => "every postgres process".to_owned(),
            _ => format!("{}-server", engine.to_lowercase()),
        },
        r.engine_cpu,
        us(per(r.engine_cpu, r.published)),
        r.engine_cpu / side * 100.0,
        side,
        us(per(side, l.delivered)),
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let _ = writeln!(
        out,
        "over {:.1} s: servers {:.0} %, engine {:.0} %, load processes {:.0} % ({:.2} s) of \
         the machine's {cores} cores",
        r.wall,
        r.servers_cpu / r.wall / cores * 100.0,
        r.engine_cpu / r.wall / cores * 100.0,
        r.loads_cpu / r.wall / cores * 100.0,
        r.loads_cpu,
    );
    if !r.idle_servers_share.is_nan() {
        let _ = writeln!(
            out,
            "connected and idle, before publishing: servers {:.1} % of a core (all \
             instances), engine {:.1} %",
            r.idle_servers_share * 100.0,
            r.idle_engine_share * 100.0
        );
    }
    if !r.engine_commands.is_empty() {
        let _ = writeln!(
            out,
            "Redis commands per event (INFO commandstats; a script's commands counted as \
             well as the script): {}",
            r.engine_commands.join(", ")
        );
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// N instances against one with one instance's share of the subscribers.
pub(super) fn comparison(spread: &PhaseReport, single: &PhaseReport) -> String {
    let n = spread.instances.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== {n} instances against 1 with one instance's share of the subscribers =="
    );
    let row = |name: &str, a: f64, b: f64| {
        vec![
            name.to_owned(),
            us(a),
            us(b),
            if a.is_nan() || b.is_nan() || b == 0.0 {
                "n/a".into()
            } else {
                format!("{:.2}", a / b)
            },
        ]
    };
    let followers = |r: &PhaseReport| -> f64 {
        let rest = &r.instances[1.min(r.instances.len())..];
        if rest.is_empty() {
            f64::NAN
        } else {
            rest.iter().map(|i| per(i.cpu, r.published)).sum::<f64>() / rest.len() as f64
        }
    };
    let rows = vec![
        vec![
            "figure".to_owned(),
            format!("{n} instances"),
            "1 instance".into(),
            "ratio".into(),
        ],
        row(
            "server CPU µs / delivery (all instances)",
            per(spread.servers_cpu, spread.loads.delivered),
            per(single.servers_cpu, single.loads.delivered),
        ),
        row(
            "servers + engine CPU µs / delivery",
            per(
                spread.servers_cpu + spread.engine_cpu,
                spread.loads.delivered,
            ),
            per(
                single.servers_cpu + single.engine_cpu,
                single.loads.delivered,
            ),
        ),
        row(
            "server CPU µs / event, the publishing instance",
            per(spread.instances[0].cpu, spread.published),
            per(single.instances[0].cpu, single.published),
        ),
        row(
            "server CPU µs / event, each other instance (mean)",
            followers(spread),
            per(single.instances[0].cpu, single.published),
        ),
        row(
            "engine CPU µs / event",
            per(spread.engine_cpu, spread.published),
            per(single.engine_cpu, single.published),
        ),
    ];
    out.push_str(&render(&rows, true));
    let extra = (per(spread.engine_cpu, spread.published)
        - per(single.engine_cpu, single.published))
        / (n.saturating_sub(1)).max(1) as f64;
    let _ = writeln!(
        out,
        "the engine costs {} µs more per event for each instance beyond the first",
        us(extra)
    );
    out
}
