//! `sluice-bench`: Sluice's ring and mempool against their peers, side by side in one run.
//!
//! ```text
//! cargo run --release -p sluice-bench -- [ring|mempool|fwd|virtio|all] [--quick] [--dpdk auto|off]
//! ```
#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};

use sluice_bench::dpdk::{self, PeerArgs};
use sluice_bench::machine;
use sluice_bench::pages::Pages;
use sluice_bench::pin::CorePair;
use sluice_bench::report::{self, Plan};
use sluice_bench::targets::{self, Figures};
use sluice_bench::virtio_bench;

/// Which sections to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    /// The SPSC ring table and the ring latency histogram.
    Ring,
    /// The mempool table and the forwarder pattern.
    Mempool,
    /// Forwarding rate at 64 B through sluice-fwd on in-memory ports (and the capture cost).
    Fwd,
    /// Only the capture cost of the forwarding section.
    Capture,
    /// The virtio-net driver's cost per packet against the software device, beside the
    /// ring port.
    Virtio,
    /// All of the above.
    All,
}

/// Whether to run the DPDK peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DpdkMode {
    /// When `libdpdk` is installed; `n/a` otherwise.
    Auto,
    /// Never (DPDK columns print `n/a`).
    Off,
}

/// Sluice's ring and mempool against their peers, in one run.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Which benchmarks to run.
    #[arg(value_enum, default_value_t = Section::All)]
    section: Section,
    /// Smaller runs (CI smoke test, under 20 s); figures are noisier.
    #[arg(long)]
    quick: bool,
    /// Run DPDK's rte_ring and rte_mempool as peers.
    #[arg(long, value_enum, default_value_t = DpdkMode::Auto)]
    dpdk: DpdkMode,
}

fn main() {
    let args = Args::parse();
    let ring = matches!(args.section, Section::Ring | Section::All);
    let pool = matches!(args.section, Section::Mempool | Section::All);
    let fwd = matches!(args.section, Section::Fwd | Section::All);
    let virtio = matches!(args.section, Section::Virtio | Section::All);
    let cores = CorePair::detect();
    let plan = Plan::new(args.quick, cores);

    println!("sluice-bench: {}", machine::describe());
    println!("{}", cores.describe());
    let pages = Pages::choose();
    println!("{}", pages.describe());

    // DPDK runs first, alone, so that its threads and ours never share the two cores.
    let peer = match args.dpdk {
        _ if !(ring || pool) => None,
        DpdkMode::Off => {
            println!("DPDK peers: off (--dpdk off)");
            None
        }
        DpdkMode::Auto => {
            let peer_args = PeerArgs {
                items_burst1: plan.items_burst1,
                items: plan.items,
                reps: plan.reps,
                capacity: plan.capacity,
                pool_objects: plan.pool_objects,
            };
            match dpdk::run_peer(&peer_args, cores, &pages) {
                Ok(report) => {
                    println!(
                        "DPDK peers: {}, TSC {:.3} GHz",
                        report.version.as_deref().unwrap_or("unknown version"),
                        report.tsc_hz.unwrap_or(0) as f64 / 1e9
                    );
                    Some(report)
                }
                Err(why) => {
                    println!("{why}");
                    None
                }
            }
        }
    };
    let reference = (ring && peer.is_some())
        .then(|| {
            dpdk::run_ring_perf(cores, &pages)
                .map_err(|why| println!("{why}"))
                .ok()
        })
        .flatten();
    println!();

    let mut figures = Figures::default();
    if ring {
        println!(
            "{}",
            report::ring_section(&plan, peer.as_ref(), reference.as_ref(), &mut figures)
        );
        println!("{}", report::latency_section(&plan));
    }
    if pool {
        println!(
            "{}",
            report::mempool_section(&plan, &pages, peer.as_ref(), &mut figures)
        );
    }
    if fwd {
        println!("{}", sluice_bench::fwd_bench::fwd_section(args.quick));
    }
    if fwd || args.section == Section::Capture {
        println!(
            "{}",
            sluice_bench::capture_bench::capture_section(args.quick)
        );
    }
    if virtio {
        let plan = virtio_bench::Plan::new(args.quick, cores.producer, pages.pool_pages());
        println!("{}", virtio_bench::virtio_section(&plan));
    }
    if ring || pool {
        println!("Targets (DESIGN.md §5), from this run's figures:\n");
        print!("{}", targets::render(&targets::evaluate(&figures)));
    }
}
