//! Generator → forwarder → sink on in-memory ports, through the same code as `sluice-fwd`:
//! exact counts, intact payloads, the MAC rewrite of each mode, no buffer leaked, in both
//! run-to-completion and pipeline mode, and a stop while traffic is at full rate.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sluice_apps::AppError;
use sluice_apps::config::{Config, LOOPBACK_EXAMPLE};
use sluice_apps::fwd::{self, FwdSummary, RunOptions, StartOptions};

fn config(text: &str) -> Config {
    Config::from_str_named(text, "test.toml").unwrap()
}

/// Lossless (no stall drops) and unpinned: tests share two cores with each other. The count
/// ends the run, not a duration: a loaded machine makes it slower, not shorter.
fn exact(count: u64) -> RunOptions {
    RunOptions {
        duration: None,
        print_stats: false,
        json: false,
        start: StartOptions {
            pin: false,
            stall_timeout: None,
            gen_count: Some(count),
            tx_first: 0,
        },
        telemetry: Default::default(),
    }
}

fn run(config: &Config, opts: &RunOptions) -> Result<FwdSummary, AppError> {
    fwd::run(config, opts, Arc::new(AtomicBool::new(false)))
}

fn assert_exact(s: &FwdSummary, n: u64) {
    assert_eq!(s.sent, n, "{}", s.render());
    assert_eq!(s.received, n, "{}", s.render());
    assert_eq!(
        (s.lost, s.corrupted, s.duplicates, s.reordered),
        (0, 0, 0, 0)
    );
    assert_eq!(s.drops, 0);
    assert_eq!(s.mac_changes, 0);
    assert!(s.no_leak(), "pools not full: {:?}", s.pools);
    assert!(!s.interrupted);
    let lat = s.latency_ns.expect("latency recorded");
    assert!(lat.p50 <= lat.p99 && lat.p99 <= lat.p999 && lat.p999 <= lat.max);
}

fn macs(s: &FwdSummary) -> (String, String) {
    s.sink_macs.clone().expect("the sink saw frames")
}

// Ring ports' MACs are 02:51 followed by the port's index: gen0 is 0, fwd0 1, fwd1 2.
const GEN0: &str = "02:51:00:00:00:00";
const FWD0: &str = "02:51:00:00:00:01";
const FWD1: &str = "02:51:00:00:00:02";

#[test]
fn rtc_io_delivers_exactly_what_was_sent() {
    let s = run(&config(LOOPBACK_EXAMPLE), &exact(200_000)).unwrap();
    assert_exact(&s, 200_000);
    assert_eq!(s.mode, "rtc");
    // io: frames keep the generator's addresses (to its peer fwd0, from gen0).
    assert_eq!(macs(&s), (FWD0.into(), GEN0.into()));
}

#[test]
fn tx_policy_lossless_in_the_config_delivers_exactly_under_the_dropping_default() {
    // The run's default policy drops after 100 µs without progress (the loopback example
    // loses frames that way at full rate); `tx_policy = "lossless"` on the forwarding lcore
    // turns that into back-pressure: every frame arrives.
    let text =
        LOOPBACK_EXAMPLE.replace("role = \"rtc\"", "role = \"rtc\"\ntx_policy = \"lossless\"");
    let mut opts = exact(200_000);
    opts.start.stall_timeout = RunOptions::default().start.stall_timeout;
    assert!(opts.start.stall_timeout.is_some());
    let s = run(&config(&text), &opts).unwrap();
    assert_exact(&s, 200_000);
}

#[test]
fn rtc_mac_swap_and_l2_rewrite_the_macs() {
    let swap = LOOPBACK_EXAMPLE.replace("mode = \"io\"", "mode = \"mac-swap\"");
    let s = run(&config(&swap), &exact(50_000)).unwrap();
    assert_exact(&s, 50_000);
    assert_eq!(macs(&s), (GEN0.into(), FWD0.into()));

    let l2 = LOOPBACK_EXAMPLE.replace(
        "mode = \"io\"",
        "mode = \"l2\"\ndst_mac = \"02:00:00:00:00:99\"",
    );
    let s = run(&config(&l2), &exact(50_000)).unwrap();
    assert_exact(&s, 50_000);
    // Source: the egress port's MAC, as the rule leaves it out.
    assert_eq!(macs(&s), ("02:00:00:00:00:99".into(), FWD1.into()));
}

#[test]
fn rtc_with_many_flows_and_large_frames_keeps_payloads_intact() {
    let text = LOOPBACK_EXAMPLE
        .replace("frame_size = 64", "frame_size = 1518")
        .replace("flows = 1", "flows = 1000")
        .replace("burst = 32", "burst = 8");
    let s = run(&config(&text), &exact(30_000)).unwrap();
    assert_exact(&s, 30_000);
    assert_eq!(s.burst, 8);
}

const PIPELINE: &str = include_str!("../../config/examples/pipeline.toml");

#[test]
fn pipeline_mac_swap_delivers_exactly_what_was_sent() {
    let text = PIPELINE.replace("rate_pps = 1000000", "rate_pps = 0");
    let s = run(&config(&text), &exact(200_000)).unwrap();
    assert_exact(&s, 200_000);
    assert_eq!(s.mode, "pipeline");
    // gen0 (0) sends to in0 (1); mac-swap turns that around.
    assert_eq!(
        macs(&s),
        ("02:51:00:00:00:00".into(), "02:51:00:00:00:01".into())
    );
    let rings: Vec<_> = s.totals.rings.iter().map(|r| r.packets).collect();
    assert_eq!(rings, [200_000, 200_000], "rx->worker and worker->tx rings");
}

#[test]
fn pipeline_with_two_workers_and_paced_generator() {
    let text = PIPELINE.replace(
        "[[lcores]]\ncore = 3",
        "[[lcores]]\ncore = 4\nrole = \"worker\"\n\n[[lcores]]\ncore = 3",
    );
    let s = run(&config(&text), &exact(20_000)).unwrap();
    assert_exact(&s, 20_000);
    // Paced at 1 Mpps: 20 000 frames take about 20 ms.
    assert!(s.secs >= 0.015, "{}", s.secs);
    assert_eq!(s.totals.rings.len(), 4, "rx->w1, rx->w2, w1->tx, w2->tx");
}

/// Stopped mid-stream at full rate with the default (dropping) policy: every buffer still
/// comes home, nothing is corrupted, and what arrived never exceeds what was sent.
fn stop_while_busy(text: &str) {
    let mut opts = RunOptions {
        duration: Some(Duration::from_millis(300)),
        print_stats: false,
        ..RunOptions::default()
    };
    opts.start.pin = false;
    let s = run(&config(text), &opts).unwrap();
    assert!(s.received > 0, "{}", s.render());
    assert!(s.received + s.drops <= s.sent, "{}", s.render());
    assert_eq!((s.corrupted, s.duplicates), (0, 0));
    assert!(s.no_leak(), "pools not full: {:?}", s.pools);
}

#[test]
fn rtc_stop_while_busy_drains_everything() {
    stop_while_busy(LOOPBACK_EXAMPLE);
}

#[test]
fn pipeline_stop_while_busy_drains_everything() {
    stop_while_busy(&PIPELINE.replace("rate_pps = 1000000", "rate_pps = 0"));
}

#[test]
fn the_default_config_runs_pinned_on_cores_0_and_1() {
    let mut opts = exact(20_000);
    opts.start.pin = true;
    let s = run(&Config::builtin_default(), &opts).unwrap();
    assert_exact(&s, 20_000);
    let cores: Vec<_> = s.lcores.iter().map(|l| l.core).collect();
    assert_eq!(
        cores,
        [Some(1), Some(0)],
        "forwarder on core 1, gen+sink on core 0"
    );
}

#[test]
fn a_core_that_does_not_exist_is_named() {
    let text = LOOPBACK_EXAMPLE.replace("core = 1", "core = 4000");
    let mut opts = exact(1);
    opts.start.pin = true;
    let e = run(&config(&text), &opts).unwrap_err().one_line();
    assert!(
        e.contains(
            "test.toml: lcores[0].core: CPU 4000 does not exist or is not available to this \
             process (available: "
        ),
        "{e}"
    );
}

#[test]
fn a_missing_interface_and_a_missing_device_are_named() {
    // The AF_XDP example on a machine without its veths (4 KiB pages, so that hugepages
    // play no part): the driver names the interface.
    if std::path::Path::new("/sys/class/net/veth-a").exists() {
        eprintln!("skipped: the AF_XDP part: this machine has an interface named veth-a");
    } else {
        let text = include_str!("../../config/examples/afxdp-veth.toml")
            .replace("hugepages = \"2M\"", "hugepages = \"none\"");
        let e = run(&config(&text), &exact(1)).unwrap_err().one_line();
        assert!(
            e.starts_with("port a: cannot open: no network interface 'veth-a'"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    // The virtio example on a machine without its NICs bound to vfio-pci: the driver names
    // the port and what VFIO refused, on one line.
    let text = include_str!("../../config/examples/virtio-vfio.toml")
        .replace("hugepages = \"2M\"", "hugepages = \"none\"");
    let e = run(&config(&text), &exact(1)).unwrap_err().one_line();
    assert!(e.starts_with("port port0: cannot open: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn missing_hugepages_are_a_one_line_error() {
    // 1 GiB pages are reserved almost nowhere; where they are, this test has nothing to show.
    let text = LOOPBACK_EXAMPLE.replace("hugepages = \"none\"", "hugepages = \"1G\"");
    match run(&config(&text), &exact(1)) {
        Err(e) => {
            let e = e.one_line();
            assert!(e.starts_with("mempool pkt: cannot create: "), "{e}");
            assert!(e.contains("1G") || e.contains("1 GiB"), "{e}");
            assert!(!e.contains('\n'));
        }
        Ok(_) => eprintln!("skipped: this machine has 1 GiB hugepages"),
    }
}
