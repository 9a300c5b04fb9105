//! The soak's report: `report.md` (every count, the first cases of each count
//! above 0 with the faults around them, resources first quarter against last),
//! CSV files of everything over time, and SVG plots the harness draws itself
//! (the machine need not have gnuplot or matplotlib).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::record::{Count, FaultEvent, Record, ResourceSample};

/// Faults this many seconds before a case (or after, for the second figure) are named with it.
const AROUND_BEFORE: f64 = 15.0;
const AROUND_AFTER: f64 = 2.0;
/// Resource growth allowed from the first quarter to the last.
const GROWTH: f64 = 0.10;
/// Descriptors: also this many more are allowed (a handful of pooled sockets is noise).
const FD_SLACK: f64 = 4.0;

pub struct Header {
    pub seed: u64,
    pub duration: String,
    pub binary: String,
    pub chain_height: usize,
    pub inject: String,
}

/// Writes the report; returns the reasons the run failed (empty: it passed).
pub fn write(
    dir: &Path,
    header: &Header,
    record: &Record,
    growth_check: bool,
) -> Result<Vec<String>, String> {
    let tallies = record.tallies();
    let faults = record.faults();
    let info = record.info();
    let resources = record.resources();
    let latency = record.latency_summary();
    let mut failures = Vec::new();
    let mut md = String::new();
    let _ = writeln!(md, "# Soak report\n");
    let _ = writeln!(
        md,
        "SEED={} DURATION={} binary `{}`; chain height at the end {}; {} faults.{}\n",
        header.seed,
        header.duration,
        header.binary,
        header.chain_height,
        faults.len(),
        if header.inject.is_empty() {
            String::new()
        } else {
            format!(" **INJECT={}** (the harness's own faults)", header.inject)
        }
    );
    let _ = writeln!(
        md,
        "## Counts (each must be 0)\n\n| count | value |\n|---|---|"
    );
    let mut counts_csv = String::from("count,value\n");
    for count in Count::ALL {
        let n = tallies.get(&count).map_or(0, |t| t.n);
        let mark = if n > 0 {
            format!("**{n}**")
        } else {
            "0".into()
        };
        let _ = writeln!(md, "| {} | {mark} |", count.name());
        let _ = writeln!(counts_csv, "{},{n}", count.name());
        if n > 0 {
            failures.push(format!("{}: {n}", count.name()));
        }
    }
    let _ = writeln!(md, "\n## Totals\n\n| what | value |\n|---|---|");
    for (what, n) in &info {
        let _ = writeln!(md, "| {what} | {n} |");
    }

    let _ = writeln!(md, "\n## Resources (median of the first quarter of each process's samples, then of the last)\n");
    let _ = writeln!(md, "| gateway | pid | samples | RSS MiB first | RSS MiB last | fds first | fds last | |\n|---|---|---|---|---|---|---|---|");
    for (gateway, pid, samples) in per_process(&resources) {
        if samples.len() < 8 {
            let _ = writeln!(
                md,
                "| {gateway} | {pid} | {} | | | | | too few samples to compare |",
                samples.len()
            );
            continue;
        }
        let q = samples.len() / 4;
        let rss =
            |s: &[&ResourceSample]| median(s.iter().map(|x| x.rss_kib as f64).collect()) / 1024.0;
        let fds = |s: &[&ResourceSample]| median(s.iter().map(|x| x.fds as f64).collect());
        let (r0, r1) = (rss(&samples[..q]), rss(&samples[samples.len() - q..]));
        let (f0, f1) = (fds(&samples[..q]), fds(&samples[samples.len() - q..]));
        let mut verdict = Vec::new();
        if r1 > r0 * (1.0 + GROWTH) {
            verdict.push(format!("RSS grew {:.0}%", (r1 / r0 - 1.0) * 100.0));
        }
        if f1 > f0 * (1.0 + GROWTH) && f1 > f0 + FD_SLACK {
            verdict.push(format!("descriptors grew from {f0} to {f1}"));
        }
        let verdict_text = if verdict.is_empty() {
            "flat".to_string()
        } else {
            format!("**{}**", verdict.join(", "))
        };
        let _ = writeln!(
            md,
            "| {gateway} | {pid} | {} | {r0:.1} | {r1:.1} | {f0} | {f1} | {verdict_text} |",
            samples.len()
        );
        if growth_check {
            failures.extend(
                verdict
                    .into_iter()
                    .map(|v| format!("gateway {gateway} (pid {pid}): {v}")),
            );
        }
    }
    if !growth_check {
        let _ = writeln!(md, "\n(GROWTH_CHECK=0: growth is shown, not judged.)");
    }

    let _ = writeln!(md, "\n## First cases\n");
    let mut any = false;
    for (count, tally) in &tallies {
        any = true;
        let _ = writeln!(md, "### {} ({})\n", count.name(), tally.n);
        for case in &tally.cases {
            let _ = writeln!(md, "- t={:.1}s: {}", case.at, case.what);
            for fault in around(&faults, case.at) {
                let _ = writeln!(
                    md,
                    "  - fault t={:.1}-{:.1}s: {}",
                    fault.start, fault.end, fault.what
                );
            }
        }
        let _ = writeln!(md);
    }
    if !any {
        let _ = writeln!(md, "None.\n");
    }

    let _ = writeln!(md, "## Files\n\n- `counts.csv`, `faults.csv`, `resources.csv` (every sample), `latency.csv` (per method per {}s window: count, p50, p99 in ms)", super::record::WINDOW.as_secs());
    let _ = writeln!(
        md,
        "- plots: `rss.svg`, `fds.svg`, `latency-p50.svg`, `latency-p99.svg`"
    );
    let _ = writeln!(md, "- `gateway-N.log` (each gateway's stderr)\n");
    let _ = writeln!(
        md,
        "## Faults\n\n| start s | end s | fault |\n|---|---|---|"
    );
    let mut faults_csv = String::from("start_s,end_s,fault\n");
    for fault in &faults {
        let _ = writeln!(
            md,
            "| {:.1} | {:.1} | {} |",
            fault.start, fault.end, fault.what
        );
        let _ = writeln!(
            faults_csv,
            "{:.1},{:.1},\"{}\"",
            fault.start, fault.end, fault.what
        );
    }
    let _ = writeln!(
        md,
        "\n## Verdict\n\n{}",
        if failures.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL: {}", failures.join("; "))
        }
    );

    let mut resources_csv = String::from("t_s,gateway,pid,rss_kib,fds\n");
    for s in &resources {
        let _ = writeln!(
            resources_csv,
            "{:.1},{},{},{},{}",
            s.at, s.gateway, s.pid, s.rss_kib, s.fds
        );
    }
    let mut latency_csv = String::from("window_start_s,method,count,p50_ms,p99_ms\n");
    for (method, rows) in &latency {
        for (at, n, p50, p99) in rows {
            let _ = writeln!(latency_csv, "{at},{method},{n},{p50:.3},{p99:.3}");
        }
    }
    let series = |f: &dyn Fn(&ResourceSample) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for s in &resources {
            by.entry(format!("gateway {} pid {}", s.gateway, s.pid))
                .or_default()
                .push((s.at, f(s)));
        }
        by.into_iter().collect()
    };
    let lat = |pick: fn(&(f64, usize, f64, f64)) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        latency
            .iter()
            .map(|(m, rows)| (m.to_string(), rows.iter().map(|r| (r.0, pick(r))).collect()))
            .collect()
    };
    let files = [
        ("report.md", md),
        ("counts.csv", counts_csv),
        ("faults.csv", faults_csv),
        ("resources.csv", resources_csv),
        ("latency.csv", latency_csv),
        (
            "rss.svg",
            svg("Gateway RSS (MiB)", &series(&|s| s.rss_kib as f64 / 1024.0)),
        ),
        (
            "fds.svg",
            svg("Gateway open file descriptors", &series(&|s| s.fds as f64)),
        ),
        (
            "latency-p50.svg",
            svg("p50 latency per method (ms)", &lat(|r| r.2)),
        ),
        (
            "latency-p99.svg",
            svg("p99 latency per method (ms)", &lat(|r| r.3)),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(failures)
}

fn around(faults: &[FaultEvent], at: f64) -> impl Iterator<Item = &FaultEvent> {
    faults
        .iter()
        .filter(move |f| f.end >= at - AROUND_BEFORE && f.start <= at + AROUND_AFTER)
}

/// Samples grouped by process (a restarted gateway is a new process), in time order.
fn per_process(samples: &[ResourceSample]) -> Vec<(usize, u32, Vec<&ResourceSample>)> {
    let mut by: BTreeMap<(usize, u32), Vec<&ResourceSample>> = BTreeMap::new();
    for s in samples {
        by.entry((s.gateway, s.pid)).or_default().push(s);
    }
    by.into_iter().map(|((g, pid), v)| (g, pid, v)).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// A line chart: one polyline per series, axes with their ranges, a legend.
pub fn svg(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 420.0;
    const L: f64 = 70.0;
    const R: f64 = 230.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x1, mut y1) = (1.0f64, 0.0f64);
    for &(x, y) in points {
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    let px = |x: f64| L + x / x1 * (W - L - R);
    let py = |y: f64| H - B - y / y1 * (H - T - B);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{L}\" y=\"24\" font-size=\"15\">{title}</text>\n"
    );
    let _ = writeln!(
        out,
        "<line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        H - B,
        W - R,
        H - B
    );
    let _ = writeln!(
        out,
        "<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>",
        H - B
    );
    for i in 0..=4 {
        let y = y1 * f64::from(i) / 4.0;
        let x = x1 * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            L - 6.0,
            py(y) + 4.0,
            fmt(y)
        );
        let _ = writeln!(
            out,
            "<line x1=\"{L}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>",
            py(y),
            W - R
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            px(x),
            H - B + 18.0,
            fmt(x)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds since start</text>",
        (L + W - R) / 2.0,
        H - 10.0
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
        let ly = T + 16.0 * i as f64;
        let _ = writeln!(out, "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>", W - R + 12.0, ly, W - R + 30.0, ly + 5.0, name);
    }
    out.push_str("</svg>\n");
    out
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
