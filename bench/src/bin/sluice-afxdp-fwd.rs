//! `sluice-afxdp-fwd`: the AF_XDP driver alone, forwarding A → B (io mode) on one pinned
//! core, for `bench/afxdp/run.sh` until the `sluice-fwd` app can take its place. Both ports
//! share one UMEM, so forwarding moves chunks and copies nothing in user space. Runs for
//! `--duration` seconds, then prints what it forwarded (or until killed).
//!
//! ```text
//! sluice-afxdp-fwd --from veth-a --to veth-b [--core 1] [--duration S] [--burst 32]
//! ```
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use sluice_apps::cli;
use sluice_mempool::lcore::{self, LcoreId};
use sluice_pmd::net::{NetPort, RxQueue, TxQueue};
use sluice_pmd::soft::af_xdp::{AfXdpConfig, AfXdpPort, Umem, XdpMode};
use sluice_pmd::{Batch, PktBuf, PktPoolConfig};

/// Forward frames from one AF_XDP port to another (io mode).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Interface frames come in on.
    #[arg(long)]
    from: String,
    /// Interface they go out on.
    #[arg(long)]
    to: String,
    /// Core to pin the forwarding loop to, 0..=1023.
    #[arg(long, default_value_t = 1, value_parser = cli::parse_core)]
    core: usize,
    /// Stop after this many seconds, up to 365 days (default: run until killed).
    #[arg(long, value_name = "SECONDS", value_parser = cli::parse_seconds)]
    duration: Option<Duration>,
    /// Ring sizes (a power of two, 64..=65536).
    #[arg(long, default_value_t = 2048, value_parser = parse_descs)]
    descs: u32,
}

/// `--descs`: what an AF_XDP ring takes, a power of two in 64..=65536.
fn parse_descs(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n.is_power_of_two() && (64..=65536).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a power of two in 64..=65536")),
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("sluice-afxdp-fwd: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = |ifname: &str, port_id| AfXdpConfig {
        rx_descs: args.descs,
        tx_descs: args.descs,
        mode: XdpMode::Auto,
        port_id,
        ..AfXdpConfig::new(ifname)
    };
    let (a_cfg, b_cfg) = (cfg(&args.from, 0), cfg(&args.to, 1));
    let chunks = a_cfg.min_chunks() + b_cfg.min_chunks() + 1024;
    let umem = Umem::new(&PktPoolConfig::new("umem", chunks), 2048)?;
    let mut a = AfXdpPort::open("a", &a_cfg, &umem)?;
    let mut b = AfXdpPort::open("b", &b_cfg, &umem)?;
    println!(
        "forwarding {} -> {} on core {}, zero-copy: {}",
        args.from,
        args.to,
        args.core,
        a.is_zero_copy() && b.is_zero_copy()
    );
    let mut rx = a.take_queues().ok_or("queues taken")?.rx.remove(0);
    let mut tx = b.take_queues().ok_or("queues taken")?.tx.remove(0);

    // No signal handler: SIGINT ends the process, and the XDP links go with it.
    let stop = Arc::new(AtomicBool::new(false));
    // At most 365 days (`cli::parse_seconds`): far from overflowing an `Instant`.
    let deadline = args.duration.map(|d| Instant::now() + d);
    let core = args.core;
    let worker = std::thread::spawn(move || {
        // At most 1023 (`cli::parse_core`), inside an affinity mask.
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
        let _lcore = LcoreId::new(core).and_then(|id| lcore::register(id).ok());
        let mut batch: Batch<PktBuf> = Batch::new();
        let (mut dropped, mut polls) = (0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            rx.rx_burst(&mut batch);
            tx.tx_burst(&mut batch);
            // io forwarding drops what the TX ring did not take rather than build latency
            // (ixy-fwd's policy); counted.
            dropped += batch.len() as u64;
            PktBuf::free_bulk(&mut batch);
            polls += 1;
            if polls % 1024 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        tx.flush();
        (rx, tx, dropped)
    });
    let (rx, tx, dropped) = worker.join().map_err(|_| "forwarding thread panicked")?;
    let (r, t) = (rx.counters().snapshot(), tx.counters().snapshot());
    println!("kernel, port a: {:?}", a.kernel_stats());
    println!(
        "rx {} tx {} tx-dropped {} rx-nombuf {} errors {}",
        r.packets,
        t.packets,
        dropped,
        r.rx_nombuf,
        r.errors + t.errors
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(args: &[String]) -> Result<Args, clap::Error> {
        Args::try_parse_from(
            std::iter::once("sluice-afxdp-fwd".to_string()).chain(args.iter().cloned()),
        )
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_flag() {
        for (flag, value) in [
            ("--duration", "1e300"),
            ("--duration", "inf"),
            ("--duration", "0"),
            ("--core", "1024"),
            ("--core", "-1"),
            ("--descs", "4294967295"),
            ("--descs", "1000"),
            ("--descs", "32"),
        ] {
            let args = ["--from", "a", "--to", "b", &format!("{flag}={value}")].map(String::from);
            let e = parse(&args).unwrap_err().to_string();
            assert!(e.contains(flag), "{flag} {value}: {e}");
        }
        let ok = parse(&["--from", "a", "--to", "b", "--descs", "65536"].map(String::from));
        assert_eq!(ok.unwrap().descs, 65536);
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            Just("1e300".to_string()),
            Just("inf".to_string()),
        ]
    }

    fn arg() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["--from", "--to", "--core", "--duration", "--descs"])
                .prop_map(String::from),
            value(),
        ]
    }

    proptest! {
        /// Whatever the command line, parsing it and using what it gives never panics.
        #[test]
        fn any_command_line_parses_or_is_refused_without_panic(args in prop::collection::vec(arg(), 0..10)) {
            if let Ok(a) = parse(&args) {
                let cfg = AfXdpConfig { rx_descs: a.descs, tx_descs: a.descs, ..AfXdpConfig::new(&a.from) };
                let _ = cfg.min_chunks().checked_mul(2);
                let _ = a.duration.map(|d| Instant::now() + d);
                prop_assert!(a.core <= cli::MAX_CORE);
            }
        }
    }
}
