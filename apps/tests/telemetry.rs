//! The telemetry endpoints against their real clients: DPDK's own `dpdk-telemetry.py`
//! (Debian package `dpdk`) queries a running `sluice-fwd` on in-memory ports through its
//! `-f` file prefix, `curl` scrapes the Prometheus endpoint and `promtool check metrics`
//! (Debian package `prometheus`) accepts what it gets; and the bad input of the endpoints.
//!
//! No root is needed: `RUNTIME_DIRECTORY` (which DPDK's EAL, its script and Sluice all
//! honour) puts the runtime directory in a temporary one. Nothing waits for a time: each
//! step polls for what it needs, within generous bounds, or for the process to exit.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const FWD: &str = env!("CARGO_BIN_EXE_sluice-fwd");
/// The most any step waits for what it polls (a loaded machine only slows it).
const BOUND: Duration = Duration::from_secs(120);

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-telemetry-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `sluice-fwd` on the built-in loopback (unpinned and run as long as needed), with `args`.
fn fwd(runtime_dir: &Path, args: &[&str]) -> Child {
    Command::new(FWD)
        .args(["--duration", "3600", "--json"])
        .args(args)
        .env("RUNTIME_DIRECTORY", runtime_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice-fwd starts")
}

/// SIGTERM, then the final summary (the last line of stdout).
fn stop(mut child: Child) -> Value {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "sluice-fwd: {status}; stdout {out}");
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

/// A port queue's packets in the summary's totals.
fn total(summary: &Value, port: &str, dir: &str) -> u64 {
    summary["totals"]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == port && q["dir"] == dir)
        .and_then(|q| q["packets"].as_u64())
        .unwrap_or_else(|| panic!("{port} {dir} in {summary}"))
}

/// Commands through `dpdk-telemetry.py -f PREFIX`, one reply object per command.
fn query(script: &Path, runtime_dir: &Path, prefix: &str, cmds: &[&str]) -> Vec<Value> {
    let mut c = Command::new(script)
        .args(["-f", prefix])
        .env("RUNTIME_DIRECTORY", runtime_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py starts");
    let input = cmds.join("\n") + "\n";
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `f` until it gives a value, within [`BOUND`]; `child` must stay up meanwhile.
fn poll<T>(child: &mut Child, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + BOUND;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!("sluice-fwd exited ({status}) before {what}: {err}");
        }
        assert!(Instant::now() < until, "no {what} within {BOUND:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dpdk_telemetry_py_reads_the_forwarders_counters() {
    let Some(script) = tool("dpdk-telemetry.py") else {
        println!("skipped: dpdk-telemetry.py not found (Debian package dpdk)");
        return;
    };
    let dir = scratch("py");
    let prefix = "fwd-test";
    let mut child = fwd(&dir, &["--telemetry-prefix", prefix]);
    let sock = dir.join("dpdk").join(prefix).join("dpdk_telemetry.v2");
    poll(&mut child, "the socket", || sock.exists().then_some(()));
    // Ports: gen0 (0), fwd0 (1), fwd1 (2), sink0 (3). Wait until frames reach the sink.
    let first = poll(&mut child, "frames at the sink", || {
        let r = query(&script, &dir, prefix, &["/ethdev/stats,3"]);
        let n = r.first()?["/ethdev/stats"]["ipackets"].as_u64()?;
        (n > 0).then_some(n)
    });
    let r = query(
        &script,
        &dir,
        prefix,
        &[
            "/",
            "/info",
            "/help,/ethdev/stats",
            "/ethdev/list",
            "/ethdev/stats,3",
            "/ethdev/xstats,1",
            "/ethdev/stats,0",
            "/ethdev/stats,4",
            "/ethdev/stats,x",
            "/sluice/lcores",
            "/sluice/mempools",
            "/sluice/rings",
            "/sluice/latency",
            "/no/such",
        ],
    );
    assert_eq!(r.len(), 14, "one reply per command: {r:?}");
    let cmds: Vec<&str> = r[0]["/"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for c in [
        "/",
        "/info",
        "/help",
        "/ethdev/list",
        "/ethdev/stats",
        "/ethdev/xstats",
        "/sluice/lcores",
        "/sluice/mempools",
        "/sluice/rings",
        "/sluice/latency",
    ] {
        assert!(cmds.contains(&c), "{c} in {cmds:?}");
    }
    assert_eq!(r[1]["/info"]["pid"], child.id());
    assert_eq!(r[1]["/info"]["max_output_len"], 16384);
    assert!(r[2]["/help"]["/ethdev/stats"].is_string());
    assert_eq!(r[3]["/ethdev/list"], serde_json::json!([0, 1, 2, 3]));
    let sink_rx = r[4]["/ethdev/stats"]["ipackets"].as_u64().unwrap();
    let fwd_rx = r[5]["/ethdev/xstats"]["rx_good_packets"].as_u64().unwrap();
    assert_eq!(
        r[5]["/ethdev/xstats"]["rx_q0_packets"].as_u64(),
        Some(fwd_rx)
    );
    let gen_sent = r[6]["/ethdev/stats"]["opackets"].as_u64().unwrap();
    assert_eq!(
        r[6]["/ethdev/stats"]["q_opackets"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    assert_eq!(
        r[6]["/ethdev/stats"]["q_opackets"][0].as_u64(),
        Some(gen_sent)
    );
    // A counter only grows: read again, it is at least what it was.
    assert!(first <= sink_rx, "{first} then {sink_rx}");
    assert!(r[7]["/ethdev/stats"].is_null(), "port 4 does not exist");
    assert!(r[8]["/ethdev/stats"].is_null(), "not a port id");
    let lcores = r[9]["/sluice/lcores"].as_object().unwrap();
    assert!(
        lcores.values().all(|l| l["polls"].as_u64() > Some(0)),
        "{lcores:?}"
    );
    let pools = r[10]["/sluice/mempools"].as_object().unwrap();
    assert!(
        pools
            .values()
            .all(|p| p["free"].as_u64() <= p["capacity"].as_u64())
    );
    assert!(r[11]["/sluice/rings"].is_object());
    let lat = &r[12]["/sluice/latency"];
    assert!(
        lat["count"].as_u64() > Some(0) && lat["p50_ns"].as_u64() <= lat["p99_ns"].as_u64(),
        "{lat}"
    );
    assert!(r[13]["/no/such"].is_null());
    let summary = stop(child);
    // The same counters at the end (the summary's totals) are at least what was read.
    assert!(total(&summary, "sink0", "rx") >= sink_rx, "{summary}");
    assert!(total(&summary, "fwd0", "rx") >= fwd_rx, "{summary}");
    assert!(total(&summary, "gen0", "tx") >= gen_sent, "{summary}");
    assert!(!sock.exists(), "the socket is removed at the end");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn scrape(addr: &str, accept: Option<&str>) -> Option<String> {
    let mut c = Command::new("curl");
    c.args(["-sf", &format!("http://{addr}/metrics")]);
    if let Some(a) = accept {
        c.args(["-H", &format!("Accept: {a}")]);
    }
    let out = c.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sample(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(prefix))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn curl_scrapes_and_promtool_accepts_the_metrics() {
    let (Some(_), Some(promtool)) = (tool("curl"), tool("promtool")) else {
        println!("skipped: curl or promtool not found (Debian packages curl, prometheus)");
        return;
    };
    let dir = scratch("prom");
    // The address from the configuration's [telemetry] table, port 0: the kernel picks one.
    let config = dir.join("fwd.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[telemetry]\nprometheus = \"127.0.0.1:0\"\n",
            sluice_apps::config::LOOPBACK_EXAMPLE
        ),
    )
    .unwrap();
    let mut child = fwd(&dir, &["--config", config.to_str().unwrap()]);
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "sluice-fwd says where it serves"
        );
        if let Some(rest) = line.split("prometheus http://").nth(1) {
            break rest.trim().trim_end_matches("/metrics").to_string();
        }
    };
    let sink_rx = r#"sluice_port_packets_total{port="sink0",queue="0",direction="rx"}"#;
    let text = poll(&mut child, "frames at the sink", || {
        let t = scrape(&addr, None)?;
        (sample(&t, sink_rx)? > 0 && sample(&t, "sluice_latency_seconds_count")? > 0).then_some(t)
    });
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = check.wait_with_output().unwrap();
    assert!(
        status.success(),
        "promtool check metrics: {status}\n{}{}\n{text}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    for name in [
        "# TYPE sluice_port_packets_total counter",
        "# TYPE sluice_latency_seconds histogram",
        "# TYPE sluice_mempool_free_buffers gauge",
        "sluice_lcore_busy_polls_total{lcore=",
        r#"sluice_latency_seconds_bucket{le="+Inf"}"#,
    ] {
        assert!(text.contains(name), "{name} in\n{text}");
    }
    // Prometheus itself asks for OpenMetrics, and gets it.
    let om = scrape(&addr, Some("application/openmetrics-text;version=1.0.0")).unwrap();
    assert!(om.ends_with("# EOF\n") && om.contains("# UNIT sluice_port_bytes bytes"));
    let summary = stop(child);
    assert!(total(&summary, "sink0", "rx") >= sample(&text, sink_rx).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `sluice-fwd` with `args` that must fail before forwarding: its stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(FWD)
        .args(["--duration", "3600"])
        .args(args)
        .env("RUNTIME_DIRECTORY", dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("Mpps"));
    err
}

#[test]
fn a_live_socket_is_kept_a_stale_one_replaced() {
    let dir = scratch("bad-sock");
    let path = dir.join("t.sock");
    let p = path.to_str().unwrap();
    // Live: another sluice-fwd serves there; the second stops with the path, the first goes on.
    let mut first = fwd(&dir, &["--telemetry", p]);
    poll(&mut first, "the socket", || path.exists().then_some(()));
    let err = refused(&dir, &["--telemetry", p]);
    assert!(
        err.contains(p) && err.contains("in use by another live process"),
        "{err}"
    );
    assert!(path.exists(), "not stolen");
    stop(first);
    // Stale: the socket of a process that is gone (SIGKILL leaves it behind) is replaced.
    let mut gone = fwd(&dir, &["--telemetry", p]);
    poll(&mut gone, "the socket", || path.exists().then_some(()));
    gone.kill().unwrap();
    gone.wait().unwrap();
    assert!(path.exists(), "left behind");
    let mut next = fwd(&dir, &["--telemetry", p]);
    let mut err = BufReader::new(next.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.contains("telemetry socket") && line.contains(p),
        "{line}"
    );
    next.stderr = None;
    stop(next);
    // Not a socket: left alone, named.
    std::fs::write(&path, b"data").unwrap();
    let err = refused(&dir, &["--telemetry", p]);
    assert!(
        err.contains("exists and is not a socket") && err.contains(p),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_prometheus_address_that_cannot_be_had_is_named_with_the_os_error() {
    let dir = scratch("bad-prom");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let sock = dir.join("t.sock");
    let err = refused(
        &dir,
        &["--prometheus", &addr, "--telemetry", sock.to_str().unwrap()],
    );
    assert!(
        err.contains(&addr) && err.contains("Address already in use"),
        "{err}"
    );
    assert!(!sock.exists(), "nothing left behind");
    let err = refused(&dir, &["--prometheus", "localhost"]);
    assert!(
        err.contains("'localhost'") && err.contains("not an IP address and port"),
        "{err}"
    );
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[telemetry]\nprometheus = \"9464\"\n",
            sluice_apps::config::LOOPBACK_EXAMPLE
        ),
    )
    .unwrap();
    let err = refused(&dir, &["--config", config.to_str().unwrap()]);
    assert!(
        err.contains("telemetry.prometheus") && err.contains("'9464'"),
        "{err}"
    );
    // A usage error: clap's status 2.
    let out = Command::new(FWD)
        .args(["--telemetry-prefix", "a/b"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'a/b' is not a file prefix"), "{err}");
    drop(taken);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dpdk_telemetry_py_reads_blkperfs_queues() {
    let Some(script) = tool("dpdk-telemetry.py") else {
        println!("skipped: dpdk-telemetry.py not found (Debian package dpdk)");
        return;
    };
    let dir = scratch("blk");
    let prefix = "blk-test";
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-blkperf"))
        .args([
            "--target",
            "ram",
            "--ram-mib",
            "8",
            "-q",
            "4",
            "-t",
            "3600",
            "--json",
        ])
        .args(["-c", "0x1", "--telemetry-prefix", prefix])
        .env("RUNTIME_DIRECTORY", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let queue = "lcore 0 (cpu 0)";
    let seen = poll(&mut child, "completed I/O", || {
        let r = query(&script, &dir, prefix, &["/sluice/nvme/queues"]);
        let q = &r.first()?["/sluice/nvme/queues"][queue];
        let ios = q["ios"].as_u64()?;
        (ios > 0).then(|| (ios, q.clone()))
    });
    assert_eq!(seen.1["errors"], 0);
    assert!(
        seen.1["latency"]["count"].as_u64() >= Some(seen.0),
        "{}",
        seen.1
    );
    assert!(seen.1["target"].as_str().unwrap().starts_with("ram"));
    let report = stop(child);
    assert!(
        report["total"]["ios"].as_u64().unwrap() >= seen.0,
        "{report}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dpdk_telemetry_py_reads_pktgens_counters() {
    let Some(script) = tool("dpdk-telemetry.py") else {
        println!("skipped: dpdk-telemetry.py not found (Debian package dpdk)");
        return;
    };
    let dir = scratch("pktgen");
    let prefix = "pktgen-test";
    // The built-in loopback: the generator on gen0 (port 0), the sink on its peer fwd0 (1).
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-pktgen"))
        .args(["--duration", "3600", "--json", "--telemetry-prefix", prefix])
        .env("RUNTIME_DIRECTORY", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sent, lat) = poll(&mut child, "frames at the sink", || {
        let r = query(
            &script,
            &dir,
            prefix,
            &["/ethdev/stats,0", "/sluice/latency"],
        );
        let sent = r.first()?["/ethdev/stats"]["opackets"].as_u64()?;
        let lat = r.get(1)?["/sluice/latency"].clone();
        (sent > 0 && lat["count"].as_u64()? > 0).then_some((sent, lat))
    });
    assert!(lat["p50_ns"].as_u64() > Some(0), "{lat}");
    let summary = stop(child);
    assert!(total(&summary, "gen0", "tx") >= sent, "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}
