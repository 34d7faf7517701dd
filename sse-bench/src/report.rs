//! Printing: one column per server, a row per figure, and ours/naive ratios.

use std::fmt::Write as _;

use crate::run::RunReport;

/// One row of the table.
struct Figure {
    name: &'static str,
    value: fn(&RunReport) -> f64,
    format: fn(f64) -> String,
    /// Shown only when some run has a non-zero value.
    optional: bool,
}

fn int(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.0}")
    }
}

fn fixed2(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.2}")
    }
}

fn mib(v: f64) -> String {
    format!("{:.1}", v / (1024.0 * 1024.0))
}

fn ms(v: f64) -> String {
    format!("{:.2}", v / 1000.0)
}

fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}

const FIGURES: &[Figure] = &[
    Figure {
        name: "wire bytes per delivery",
        value: |r| {
            if r.delivered == 0 {
                0.0
            } else {
                r.wire_bytes as f64 / r.delivered as f64
            }
        },
        format: int,
        optional: true,
    },
    Figure {
        name: "connected (readers + stalled)",
        value: |r| (r.readers + r.stalled) as f64,
        format: int,
        optional: false,
    },
    Figure {
        name: "events published",
        value: |r| r.published as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "publish rate (ev/s)",
        value: |r| r.publish_rate,
        format: int,
        optional: true,
    },
    Figure {
        name: "publish failures",
        value: |r| r.publish_failed as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "delivered",
        value: |r| r.delivered as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "expected",
        value: |r| r.expected as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "lost",
        value: |r| r.lost as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "readers that lost events",
        value: |r| r.readers_with_loss as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "duplicated",
        value: |r| r.duplicates as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "sse-reset events received",
        value: |r| r.resets as f64,
        format: int,
        optional: true,
    },
    Figure {
        name: "latency p50 (ms)",
        value: |r| r.latency.quantile(0.5) as f64,
        format: ms,
        optional: true,
    },
    Figure {
        name: "latency p99 (ms)",
        value: |r| r.latency.quantile(0.99) as f64,
        format: ms,
        optional: true,
    },
    Figure {
        name: "latency max (ms)",
        value: |r| r.latency.max() as f64,
        format: ms,
        optional: true,
    },
    Figure {
        name: "deliveries/s",
        value: |r| r.deliveries_per_sec,
        format: int,
        optional: true,
    },
    Figure {
        name: "server CPU (s)",
        value: |r| r.server_cpu,
        format: fixed2,
        optional: false,
    },
    Figure {
        name: "server CPU s / 1M deliveries",
        value: |r| r.cpu_per_million,
        format: fixed2,
        optional: true,
    },
    Figure {
        name: "server CPU µs / event published",
        value: |r| r.cpu_per_event_us,
        format: fixed2,
        optional: true,
    },
    Figure {
        name: "  same, idle connections' CPU subtracted",
        value: |r| r.cpu_per_event_net_us,
        format: fixed2,
        optional: true,
    },
    Figure {
        name: "server CPU idle (% of a core)",
        value: |r| r.idle_cpu_share * 100.0,
        format: fixed2,
        optional: true,
    },
    Figure {
        name: "server CPU in kernel",
        value: |r| r.server_sys_share,
        format: pct,
        optional: true,
    },
    Figure {
        name: "server RSS before (MiB)",
        value: |r| r.rss_before as f64,
        format: mib,
        optional: false,
    },
    Figure {
        name: "server RSS connected (MiB)",
        value: |r| r.rss_connected as f64,
        format: mib,
        optional: false,
    },
    Figure {
        name: "server RSS per connection (B)",
        value: |r| r.rss_per_conn,
        format: int,
        optional: false,
    },
    Figure {
        name: "server RSS peak (MiB)",
        value: |r| r.rss_peak as f64,
        format: mib,
        optional: false,
    },
    Figure {
        name: "server RSS end (MiB)",
        value: |r| r.rss_end as f64,
        format: mib,
        optional: false,
    },
    Figure {
        name: "comments (keep-alives) per connection",
        value: |r| r.comments as f64 / (r.readers + r.stalled).max(1) as f64,
        format: fixed2,
        optional: true,
    },
    Figure {
        name: "load tool CPU (cores)",
        value: |r| r.load_threads.iter().map(|t| t.1).sum(),
        format: fixed2,
        optional: false,
    },
    Figure {
        name: "client saturated (runs)",
        value: |r| f64::from(u8::from(r.client_saturated)),
        format: pct,
        optional: false,
    },
];

/// Runs of one server, to be averaged.
pub struct Column<'a> {
    /// Header.
    pub label: String,
    /// Its runs.
    pub runs: Vec<&'a RunReport>,
}

fn mean(runs: &[&RunReport], value: fn(&RunReport) -> f64) -> f64 {
    runs.iter().map(|r| value(r)).sum::<f64>() / runs.len().max(1) as f64
}

fn ratio(ours: f64, naive: f64) -> String {
    if ours.is_nan() || naive.is_nan() {
        "n/a".into()
    } else if naive == 0.0 {
        if ours == 0.0 {
            "=".into()
        } else {
            "n/a".into()
        }
    } else {
        format!("{:.2}", ours / naive)
    }
}

/// The comparison table. A ratio column divides the column labelled `ours` by the one
/// labelled `naive`, and `ours-metrics` by `ours`, when both are present.
pub fn table(columns: &[Column<'_>], markdown: bool) -> String {
    let pos = |l: &str| columns.iter().position(|c| c.label == l);
    let ratios: Vec<(usize, usize)> = [
        ("ours", "naive"),
        ("ours-metrics", "ours"),
        ("ours-gzip", "ours"),
    ]
    .into_iter()
    .filter_map(|(a, b)| pos(a).zip(pos(b)))
    .collect();
    let mut header: Vec<String> = vec!["figure".into()];
    header.extend(columns.iter().map(|c| c.label.clone()));
    for (a, b) in &ratios {
        header.push(format!("{}/{}", columns[*a].label, columns[*b].label));
    }
    let mut rows = vec![header];
    for f in FIGURES {
        let values: Vec<f64> = columns.iter().map(|c| mean(&c.runs, f.value)).collect();
        if f.optional && values.iter().all(|v| *v == 0.0 || v.is_nan()) {
            continue;
        }
        let mut row = vec![f.name.to_string()];
        row.extend(values.iter().map(|v| (f.format)(*v)));
        for (a, b) in &ratios {
            row.push(ratio(values[*a], values[*b]));
        }
        rows.push(row);
    }
    render(&rows, markdown)
}

/// Rows of cells as an aligned text table, or as Markdown; the first row is the header.
pub fn render(rows: &[Vec<String>], markdown: bool) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        if markdown {
            let _ = writeln!(out, "| {} |", cells.join(" | "));
            if n == 0 {
                let rule: Vec<String> = widths
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let dashes = "-".repeat(w.saturating_sub(1).max(2));
                        if i == 0 {
                            format!("{dashes}-")
                        } else {
                            format!("{dashes}:")
                        }
                    })
                    .collect();
                let _ = writeln!(out, "| {} |", rule.join(" | "));
            }
        } else {
            let _ = writeln!(out, "  {}", cells.join("  "));
        }
    }
    out
}

/// Per-second p99 latency and server RSS of each run, to see whether they stay flat.
pub fn timeline(run: &RunReport) -> String {
    let p99: Vec<String> = run
        .window_p99
        .iter()
        .map(|v| format!("{:.1}", *v as f64 / 1000.0))
        .collect();
    let rss: Vec<String> = run.rss_samples.iter().map(|v| mib(*v as f64)).collect();
    format!(
        "  {}: p99 by second (ms): {}\n  {}: server RSS by second (MiB): {}\n",
        run.label,
        p99.join(" "),
        run.label,
        rss.join(" ")
    )
}

/// Notes and saturation warnings of a run.
pub fn notes(run: &RunReport, load_cores: f64) -> String {
    let mut out = String::new();
    for note in &run.notes {
        let _ = writeln!(out, "  note ({}): {note}", run.label);
    }
    if run.client_saturated {
        let threads: Vec<String> = run
            .load_threads
            .iter()
            .map(|(n, b)| format!("{n} {:.0} %", b * 100.0))
            .collect();
        let _ = writeln!(
            out,
            "  CLIENT SATURATED ({}): the load tool used {:.2} of its {load_cores} core(s) \
             ({}); latency and loss may be the client's, not the server's",
            run.label,
            run.load_threads.iter().map(|t| t.1).sum::<f64>(),
            threads.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_markdown() {
        let ours = RunReport {
            label: "ours".into(),
            delivered: 100,
            server_cpu: 1.0,
            ..RunReport::default()
        };
        let naive = RunReport {
            label: "naive".into(),
            delivered: 50,
            server_cpu: 4.0,
            ..RunReport::default()
        };
        let cols = [
            Column {
                label: "ours".into(),
                runs: vec![&ours],
            },
            Column {
                label: "naive".into(),
                runs: vec![&naive],
            },
        ];
        let md = table(&cols, true);
        assert!(md.starts_with("| figure"), "{md}");
        assert!(md.contains("| delivered "), "{md}");
        let cpu = md.lines().find(|l| l.contains("server CPU (s)")).unwrap();
        assert!(cpu.trim_end().ends_with("0.25 |"), "{cpu}");
        // Zero everywhere: an optional row is left out.
        assert!(!md.contains("duplicated"), "{md}");
        assert_eq!(ratio(0.0, 0.0), "=");
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }
}
