//! `sluice-devbind`: show network and storage PCI devices, and bind them to vfio-pci (or back
//! to a kernel driver).
//!
//! ```text
//! sluice-devbind status
//! sluice-devbind bind 0000:00:04.0 00:05.0 [--driver vfio-pci] [--force]
//! sluice-devbind unbind 00:04.0
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_apps::devbind::Devbind;
use sluice_pmd::pci::{PciAddr, VFIO_PCI};

/// Examples at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  sluice-devbind status
      network and storage devices: driver, IOMMU group, whether VFIO can take them
  sluice-devbind bind 0000:00:04.0
      hand the device to vfio-pci for sluice-fwd or sluice-blkperf (as root)
  sluice-devbind unbind 0000:00:04.0";

/// Sluice device binder: shows PCI network and storage devices and moves them between kernel
/// drivers and vfio-pci.
#[derive(Parser, Debug)]
#[command(version, before_help = sluice_apps::cli::SUITE, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Root of the sysfs tree (tests point it at a fake tree).
    #[arg(long, hide = true, default_value = "/sys", global = true)]
    sysfs_root: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List network and storage devices with driver, IOMMU group and whether VFIO can take
    /// them.
    Status,
    /// Bind devices to a driver (vfio-pci by default) through driver_override.
    Bind {
        /// PCI addresses (0000:00:04.0 or 00:04.0).
        #[arg(required = true)]
        addrs: Vec<PciAddr>,
        /// The driver to bind to.
        #[arg(long, default_value = VFIO_PCI)]
        driver: String,
        /// Take a NIC even when its kernel interface is up.
        #[arg(long)]
        force: bool,
    },
    /// Unbind devices from their driver and clear their driver_override.
    Unbind {
        /// PCI addresses.
        #[arg(required = true)]
        addrs: Vec<PciAddr>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let devbind = Devbind::new(&cli.sysfs_root);
    let result = match &cli.cmd {
        Cmd::Status => devbind.status().map(|s| vec![s.trim_end().to_string()]),
        Cmd::Bind {
            addrs,
            driver,
            force,
        } => devbind.bind(addrs, driver, *force),
        Cmd::Unbind { addrs } => devbind.unbind(addrs),
    };
    match result {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-devbind: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
