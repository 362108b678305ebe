//! The configured burst reaches every lcore [`start`] starts, and such a run delivers
//! everything.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sluice_config::{Config, LOOPBACK_EXAMPLE};

use super::*;
use crate::fwd::{Run, RunOptions, drive};
use crate::ports::{open_pools, open_ports};

const FRAMES: u64 = 20_000;

/// Unpinned (tests share the machine's cores) and lossless, with a frame count.
/// Runs `config` (its pools and ports opened) until the generator's `frames` are delivered,
/// lossless, unpinned, and checks that every frame arrived intact and every buffer came home.
pub(super) fn drive_exact(
    config: &Config,
    pools: Vec<sluice_pmd::PktPool>,
    mut ports: Vec<sluice_pmd::net::any::AnyPort>,
    frames: u64,
) -> crate::fwd::FwdSummary {
    let opts = RunOptions {
        duration: Some(Duration::from_secs(120)),
        print_stats: false,
        json: false,
        start: StartOptions {
            pin: false,
            stall_timeout: None,
            gen_count: Some(frames),
            tx_first: 0,
        },
        telemetry: Default::default(),
    };
    let started = start(config, &mut ports, &pools, &opts.start).unwrap();
    let run = Run {
        name: config.name(),
        frame_size: Some(64),
        stats_interval: None,
    };
    let summary = drive(
        &run,
        pools,
        ports,
        started,
        &opts,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert_eq!(
        (summary.sent, summary.received, summary.lost, summary.drops),
        (frames, frames, 0, 0),
        "{}",
        summary.render()
    );
    assert_eq!(summary.corrupted, 0);
    assert!(summary.no_leak(), "{:?}", summary.pools);
    summary
}

fn options() -> RunOptions {
    RunOptions {
        duration: Some(Duration::from_secs(60)),
        print_stats: false,
        json: false,
        start: StartOptions {
            pin: false,
            stall_timeout: None,
            gen_count: Some(FRAMES),
            tx_first: 0,
        },
        telemetry: Default::default(),
    }
}

/// Starts `text`, checks that every lcore runs with `burst` and that the lcores are `names`,
/// then runs it to the generator's count and checks that every frame arrived.
fn check(text: &str, burst: usize, names: &[&str]) {
    let config = Config::from_str_named(text, "burst.toml").unwrap();
    let opts = options();
    let pools = open_pools(&config).unwrap();
    let mut ports = open_ports(&config, &pools).unwrap();
    let started = start(&config, &mut ports, &pools, &opts.start).unwrap();
    assert_eq!(started.burst, burst);
    assert_eq!(started.generator.as_ref().map(|g| g.burst()), Some(burst));
    assert_eq!(started.sink.as_ref().map(|s| s.burst()), Some(burst));
    let lcores: Vec<&str> = started.runtime.lcores().iter().map(|l| l.name()).collect();
    assert_eq!(lcores, names);
    let run = Run {
        name: config.name(),
        frame_size: Some(64),
        stats_interval: None,
    };
    let summary = drive(
        &run,
        pools,
        ports,
        started,
        &opts,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert_eq!(summary.burst, burst);
    assert_eq!(
        (summary.sent, summary.received, summary.lost, summary.drops),
        (FRAMES, FRAMES, 0, 0),
        "{}",
        summary.render()
    );
    assert!(summary.no_leak(), "{:?}", summary.pools);
}

#[test]
fn a_burst_of_8_is_used_by_the_forwarder_generator_and_sink() {
    let text = LOOPBACK_EXAMPLE.replace("burst = 32", "burst = 8");
    // Generator and sink share core 0, and so one lcore.
    check(&text, 8, &["lcore 1 (rtc)", "generator+sink"]);
    // The sink on a core of its own starts first.
    let own_core = text.replace("port = \"sink0\"\ncore = 0", "port = \"sink0\"\ncore = 2");
    check(&own_core, 8, &["sink", "lcore 1 (rtc)", "generator"]);
}

#[test]
fn a_burst_that_is_no_power_of_two_runs_rounded_down_everywhere() {
    let text = LOOPBACK_EXAMPLE.replace("burst = 32", "burst = 20");
    check(&text, 16, &["lcore 1 (rtc)", "generator+sink"]);
}
