//! Generator → forwarder → sink over AF_XDP on veth pairs, through the same code as
//! `sluice-fwd`: exact counts, intact payloads, no buffer leaked.
//!
//! ```text
//! generator → gen0 (sxg0a) ══veth══ sxg0b (fwd0) → [lcore: io] → fwd1 (sxs0a) ══veth══ sxs0b (sink0) → sink
//! ```
//!
//! Needs root (namespaces, XDP, AF_XDP). The test makes a network namespace with the two
//! veth pairs and runs the forwarder in a child process under `ip netns exec` (which also
//! gives it that namespace's sysfs), then deletes the namespace. Without root or `ip`, it
//! prints `skipped: <reason>` and returns.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sluice_apps::config::Config;
use sluice_apps::fwd::{self, RunOptions, StartOptions};

const FRAMES: u64 = 10_000;

const CONFIG: &str = r#"
burst = 32

[[mempools]]
name = "umem"
buffers = 40960             # the rings need 4 x (2 x 4096 + 1024 + 64)
buffer_size = 1792
cache_size = 256
hugepages = "none"

[[ports]]
name = "gen0"
driver = "af_xdp"
interface = "sxg0a"
xdp_mode = "copy"
rx_descriptors = 4096
tx_descriptors = 1024
mempool = "umem"

[[ports]]
name = "fwd0"
driver = "af_xdp"
interface = "sxg0b"
xdp_mode = "copy"
rx_descriptors = 4096
tx_descriptors = 1024
mempool = "umem"

[[ports]]
name = "fwd1"
driver = "af_xdp"
interface = "sxs0a"
xdp_mode = "copy"
rx_descriptors = 4096
tx_descriptors = 1024
mempool = "umem"

[[ports]]
name = "sink0"
driver = "af_xdp"
interface = "sxs0b"
xdp_mode = "copy"
rx_descriptors = 4096
tx_descriptors = 1024
mempool = "umem"

[[lcores]]
core = 1
role = "rtc"
rx = ["fwd0/q0"]

[[forward]]
from = "fwd0"
to = "fwd1"
mode = "io"

[generator]
port = "gen0"
core = 0
frame_size = 64
rate_pps = 10000          # well under what a loaded 2-core machine forwards: veth has no
flows = 4                 # back-pressure, so frames are lost if the forwarder stalls for
                          # longer than its RX and FILL rings last (12288 frames: > 1 s)

[sink]
port = "sink0"
core = 0
"#;

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// A network namespace, deleted (with its veths) on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn setup() -> Result<Netns, String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root (AF_XDP, XDP and namespaces need it)".into());
    }
    let ns = Netns(format!("sluice-afxdp-e2e-{}", std::process::id()));
    ip(&["netns", "add", &ns.0])?;
    let n = ns.0.as_str();
    // No IPv6 autoconfiguration frames on the wires.
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ])
        .status();
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])
        .status();
    for (a, b) in [("sxg0a", "sxg0b"), ("sxs0a", "sxs0b")] {
        ip(&["-n", n, "link", "add", a, "type", "veth", "peer", "name", b])?;
        ip(&["-n", n, "link", "set", a, "up"])?;
        ip(&["-n", n, "link", "set", b, "up"])?;
    }
    Ok(ns)
}

#[test]
fn generator_forwarder_sink_over_af_xdp_veths() {
    let ns = match setup() {
        Ok(ns) => ns,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "forward_in_the_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env("SLUICE_AFXDP_E2E", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the forwarder run in the namespace failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing stays attached once the run is over.
    let links = Command::new("ip")
        .args(["-n", &ns.0, "link", "show"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("xdp"));
}

/// The run itself, in the namespace `generator_forwarder_sink_over_af_xdp_veths` made.
#[test]
#[ignore = "run by generator_forwarder_sink_over_af_xdp_veths inside its namespace"]
fn forward_in_the_namespace() {
    if std::env::var("SLUICE_AFXDP_E2E").is_err() {
        return;
    }
    let config = Config::from_str_named(CONFIG, "afxdp-e2e.toml").unwrap();
    let opts = RunOptions {
        duration: None, // the count ends the run
        print_stats: false,
        json: false,
        start: StartOptions {
            pin: false,
            stall_timeout: None,
            gen_count: Some(FRAMES),
            tx_first: 0,
        },
        telemetry: Default::default(),
    };
    let s = fwd::run(&config, &opts, Arc::new(AtomicBool::new(false))).unwrap();
    println!("{}", s.render());
    assert_eq!((s.sent, s.received), (FRAMES, FRAMES), "{}", s.render());
    assert_eq!(
        (s.lost, s.corrupted, s.duplicates, s.reordered),
        (0, 0, 0, 0)
    );
    assert_eq!(s.drops, 0);
    assert!(s.no_leak(), "pools not full: {:?}", s.pools);
}
