//! `sluice-blkperf` on the RAM disk as a user runs it: JSON records each second that add up
//! to the report, progress lines, and the `-LL` histogram.

use std::process::Command;

fn blkperf(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-blkperf"))
        .args(["--ram-mib", "16", "-q", "8"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn json_records_each_second_add_up_to_the_report_and_the_histogram_too() {
    let out = blkperf(&["-t", "1.5", "--json", "-LL", "-w", "randrw"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary", "{out}");
    let total = summary["total"]["ios"].as_u64().unwrap();
    assert!(total > 0);
    let intervals: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["type"] == "interval").collect();
    // At least the last record (the rest of the run after the previous one), however
    // slowly a busy host ran the sampler.
    assert!(!intervals.is_empty(), "{out}");
    let sum: u64 = intervals.iter().map(|l| l["ios"].as_u64().unwrap()).sum();
    assert_eq!(sum, total, "the records' ios are the run's");
    let mut t = 0.0;
    for l in &intervals {
        let at = l["t_s"].as_f64().unwrap();
        assert!(at > t, "records in time order: {out}");
        t = at;
    }
    let hist = lines.iter().find(|l| l["type"] == "histogram").unwrap();
    let buckets = hist["buckets_us"].as_array().unwrap();
    let counted: u64 = buckets.iter().map(|b| b[2].as_u64().unwrap()).sum();
    assert_eq!(counted, total, "every I/O in one bucket");
    let mut hi = 0.0;
    for b in buckets {
        let (lo, up) = (b[0].as_f64().unwrap(), b[1].as_f64().unwrap());
        assert!(lo >= hi && up > lo, "buckets ascend without overlap: {b}");
        hi = up;
    }
}

#[test]
fn progress_lines_when_asked_and_not_into_a_pipe() {
    let out = blkperf(&["-t", "1.2", "--progress", "-LL"]);
    let progress: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    assert!(!progress.is_empty(), "{out}");
    assert!(progress.iter().all(|l| l.contains(" IOPS ")), "{out}");
    assert!(out.contains("latency histogram:"), "{out}");
    assert!(out.contains("latency percentiles (us):"), "{out}");
    // stdout is a pipe here: no progress by default, none with --no-progress, and -L alone
    // is the percentile summary without the histogram.
    for args in [
        &["-t", "0.3", "-L"][..],
        &["-t", "0.3", "--progress", "--no-progress"],
    ] {
        let out = blkperf(args);
        assert!(!out.lines().any(|l| l.starts_with('[')), "{out}");
        assert!(!out.contains("latency histogram:"), "{out}");
        assert!(out.contains("latency percentiles (us):"), "{out}");
    }
}
