//! The binaries as a user runs them: exit status, summary, one-line errors, JSON lines.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

fn fwd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-fwd"))
        .args(args)
        .output()
        .expect("sluice-fwd runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_default_run_prints_stats_and_a_summary_and_exits_0() {
    // A count, not a duration, bounds the run: a loaded machine makes it slower, not emptier.
    let (code, out, err) = fwd(&["--count", "5000"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("config/examples/loopback.toml"), "{out}");
    assert!(out.contains("fwd1/q0"), "per-queue rows: {out}");
    assert!(out.contains("summary: "), "{out}");
    assert!(out.contains("latency:   p50 "), "{out}");
    assert!(out.contains("pkt 8191/8191 free"), "{out}");
}

#[test]
fn json_output_is_one_object_per_line_ending_with_the_summary() {
    // No duration: the run lasts until an interval line shows frames at the sink, however
    // long a loaded machine takes to print one; then SIGINT ends it with the summary.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-fwd"))
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice-fwd runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines: Vec<serde_json::Value> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "sluice-fwd ended before an interval with traffic: {lines:?}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["type"], "interval", "{line}");
        let at_sink = v["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "sink0" && q["packets"].as_u64().unwrap() > 0);
        lines.push(v);
        if at_sink {
            break;
        }
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    for l in rest.lines() {
        lines.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")));
    }
    assert_eq!(status.code(), Some(0), "{rest}");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(last["interrupted"], true);
    assert!(last["received"].as_u64().unwrap() > 0);
    assert!(last["latency_ns"]["p99"].as_u64().is_some());
}

#[test]
fn a_count_ends_the_run_when_every_frame_arrived() {
    let (code, out, err) = fwd(&["--count", "10000"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10000 frames of 64 B sent"), "{out}");
}

#[test]
fn a_bad_config_is_one_line_naming_file_key_and_value() {
    let dir = std::env::temp_dir().join(format!("sluice-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    let text = sluice_apps::config::LOOPBACK_EXAMPLE.replace("burst = 32", "burst = 1000");
    std::fs::write(&path, text).unwrap();
    let (code, out, err) = fwd(&["--config", path.to_str().unwrap(), "--duration", "1"]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "sluice-fwd: error: {}: burst: 1000 is out of range 1..=256",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_exit_non_zero() {
    let (code, _, err) = fwd(&["--duration", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("--duration"), "{err}");
}

fn pktgen(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-pktgen"))
        .args(args)
        .output()
        .expect("sluice-pktgen runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pktgen_sends_a_count_and_the_sink_checks_it() {
    let (code, out, err) = pktgen(&[
        "--count",
        "50000",
        "--flows",
        "64",
        "--frame-size",
        "128",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["sent"], 50000);
    assert_eq!(last["received"], 50000);
    assert_eq!(last["corrupted"], 0);
    assert_eq!(last["frame_size"], 128);
}

#[test]
fn pktgen_refuses_sizes_and_ports_it_cannot_use() {
    let (code, _, err) = pktgen(&["--frame-size", "9000", "--count", "1"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("frame size 9000 is out of range (64..=2052"),
        "{err}"
    );
    let (code, _, err) = pktgen(&["--frame-size", "63"]);
    assert_ne!(code, 0);
    assert!(err.contains("--frame-size 63"), "{err}");
    let (code, _, err) = pktgen(&["--tx-port", "nope"]);
    assert_ne!(code, 0);
    assert_eq!(
        err.trim_end(),
        "sluice-pktgen: error: --tx-port nope: no such port in config/examples/loopback.toml (ports: gen0, fwd0, fwd1, sink0)"
    );
}

/// SIGINT and SIGTERM stop the run in order: summary printed, pools full, exit 0.
#[test]
fn sigint_and_sigterm_stop_with_a_summary() {
    for sig in ["-INT", "-TERM"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-fwd"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice-fwd starts");
        // Its first line comes once the signal handlers are in place.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(first.starts_with("sluice-fwd: "), "{first}");
        let killed = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = first + &rest;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{sig}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(", interrupted"), "{sig}: {stdout}");
        assert!(stdout.contains("pkt 8191/8191 free"), "{sig}: {stdout}");
    }
}

#[test]
fn every_binary_s_help_opens_with_the_suite_says_what_it_is_and_shows_an_example() {
    for (bin, what) in [
        (env!("CARGO_BIN_EXE_sluice-fwd"), "Sluice forwarder"),
        (
            env!("CARGO_BIN_EXE_sluice-pktgen"),
            "Sluice packet generator",
        ),
        (
            env!("CARGO_BIN_EXE_sluice-blkperf"),
            "Sluice block I/O tester",
        ),
        (env!("CARGO_BIN_EXE_sluice-devbind"), "Sluice device binder"),
    ] {
        let out = Command::new(bin).arg("--help").output().unwrap();
        assert!(out.status.success(), "{bin}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "Sluice applications: forwarder, packet generator, block I/O tester, device binder"
            ),
            "{bin}: {text}"
        );
        assert!(text.contains(what), "{bin}: {text}");
        let name = std::path::Path::new(bin)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let examples = text.split("Examples:\n").nth(1).unwrap_or_default();
        assert!(examples.contains(&format!("  {name} ")), "{bin}: {text}");
    }
}
