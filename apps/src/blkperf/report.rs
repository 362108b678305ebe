//! The results table (per-lcore rows, total, percentiles) and its JSON form.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::LcoreResult;

/// Percentiles reported, as in `spdk_nvme_perf`'s summary.
pub const PERCENTILES: [f64; 9] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 99.999];

/// A whole run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target's description.
    pub target: String,
    /// Workload, size and depth, for the header.
    pub job: String,
    /// One row per lcore.
    pub lcores: Vec<LcoreResult>,
    /// Whether a signal ended the run before its time (the figures are of the time run).
    pub interrupted: bool,
}

struct Row {
    iops: f64,
    mibs: f64,
    avg_us: f64,
    min_us: f64,
    max_us: f64,
    doorbells_per_io: f64,
}

fn row(ios: u64, bytes: u64, secs: f64, h: &Histogram<u64>, doorbells: u64) -> Row {
    let secs = secs.max(1e-9);
    let empty = h.is_empty();
    Row {
        iops: ios as f64 / secs,
        mibs: bytes as f64 / secs / (1 << 20) as f64,
        avg_us: if empty { 0.0 } else { h.mean() / 1e3 },
        min_us: if empty { 0.0 } else { h.min() as f64 / 1e3 },
        max_us: if empty { 0.0 } else { h.max() as f64 / 1e3 },
        doorbells_per_io: if ios == 0 {
            0.0
        } else {
            doorbells as f64 / ios as f64
        },
    }
}

impl Report {
    fn total(&self) -> (Row, Histogram<u64>, u64, u64, u64, u64) {
        let mut h = self.lcores.first().map_or_else(
            || Histogram::new(3).expect("3 significant figures are valid"),
            |l| Histogram::new_from(&l.latency),
        );
        let (mut ios, mut bytes, mut db, mut errs, mut bad, mut checked) = (0, 0, 0, 0, 0, 0);
        let mut secs = Duration::ZERO;
        for l in &self.lcores {
            let _ = h.add(&l.latency);
            ios += l.ios;
            bytes += l.bytes;
            db += l.doorbells;
            errs += l.errors;
            bad += l.mismatches;
            checked += l.verified_blocks;
            secs = secs.max(l.elapsed);
        }
        let r = row(ios, bytes, secs.as_secs_f64(), &h, db);
        (r, h, errs, bad, checked, ios)
    }

    /// Requests that failed plus blocks that did not verify.
    pub fn failures(&self) -> u64 {
        self.lcores.iter().map(|l| l.errors + l.mismatches).sum()
    }
}

/// The table `sluice-blkperf` prints.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sluice-blkperf: {} on {}{}",
        r.job,
        r.target,
        if r.interrupted { ", interrupted" } else { "" }
    );
    let _ = writeln!(
        s,
        "{:<12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "lcore (cpu)", "IOPS", "MiB/s", "avg us", "min us", "max us", "doorbells/IO"
    );
    let line = |s: &mut String, name: String, x: &Row| {
        let _ = writeln!(
            s,
            "{:<12} {:>12.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>12.3}",
            name, x.iops, x.mibs, x.avg_us, x.min_us, x.max_us, x.doorbells_per_io
        );
    };
    for l in &r.lcores {
        let x = row(
            l.ios,
            l.bytes,
            l.elapsed.as_secs_f64(),
            &l.latency,
            l.doorbells,
        );
        line(&mut s, format!("{} ({})", l.lcore, l.cpu), &x);
    }
    let (t, h, errs, bad, checked, _) = r.total();
    line(&mut s, "total".into(), &t);
    let _ = writeln!(s, "\nlatency percentiles (us):");
    for p in PERCENTILES {
        let v = if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p / 100.0)
        };
        let _ = writeln!(s, "  {:>8.3}% : {:>10.2}", p, v as f64 / 1e3);
    }
    let _ = writeln!(s, "\nerrors: {errs}");
    if checked > 0 {
        let _ = writeln!(s, "verify: {checked} blocks checked, {bad} mismatches");
    }
    s
}

/// The same figures as JSON.
pub fn render_json(r: &Report) -> String {
    let esc = |t: &str| t.replace('\\', "\\\\").replace('"', "\\\"");
    let obj = |x: &Row| {
        format!(
            "\"iops\":{:.1},\"mib_s\":{:.3},\"avg_us\":{:.3},\"min_us\":{:.3},\"max_us\":{:.3},\"doorbells_per_io\":{:.4}",
            x.iops, x.mibs, x.avg_us, x.min_us, x.max_us, x.doorbells_per_io
        )
    };
    let lcores: Vec<String> = r
        .lcores
        .iter()
        .map(|l| {
            let x = row(
                l.ios,
                l.bytes,
                l.elapsed.as_secs_f64(),
                &l.latency,
                l.doorbells,
            );
            format!(
                "{{\"lcore\":{},\"cpu\":{},\"ios\":{},{},\"errors\":{},\"mismatches\":{}}}",
                l.lcore,
                l.cpu,
                l.ios,
                obj(&x),
                l.errors,
                l.mismatches
            )
        })
        .collect();
    let (t, h, errs, bad, checked, ios) = r.total();
    let pct: Vec<String> = PERCENTILES
        .iter()
        .map(|&p| {
            let v = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p / 100.0)
            };
            format!("\"{p}\":{:.3}", v as f64 / 1e3)
        })
        .collect();
    format!(
        "{{\"target\":\"{}\",\"job\":\"{}\",\"lcores\":[{}],\"total\":{{\"ios\":{ios},{},\"errors\":{errs},\"verified_blocks\":{checked},\"mismatches\":{bad},\"percentiles_us\":{{{}}}}},\"interrupted\":{},\"type\":\"summary\"}}",
        esc(&r.target),
        esc(&r.job),
        lcores.join(","),
        obj(&t),
        pct.join(","),
        r.interrupted
    )
}
