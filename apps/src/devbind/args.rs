//! `sluice-devbind`'s command line, parsed in the library so that tests and fuzz targets
//! drive it in-process; and the check on `--driver`, whose value runs as root into a sysfs
//! path (`/sys/bus/pci/drivers/NAME`) and a `modprobe NAME` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sluice_pmd::pci::{PciAddr, VFIO_PCI};

/// The longest driver name accepted: a kernel module name is at most 55 bytes
/// (`MODULE_NAME_LEN` - 1 = 64 - 8 - 1), well over any PCI driver's.
pub const MAX_DRIVER_NAME: usize = 55;

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
#[command(
    name = "sluice-devbind",
    version,
    before_help = crate::cli::SUITE,
    after_help = EXAMPLES
)]
pub struct DevbindArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: DevbindCmd,
    /// Root of the sysfs tree (tests point it at a fake tree).
    #[arg(long, hide = true, default_value = "/sys", global = true)]
    pub sysfs_root: PathBuf,
}

/// `sluice-devbind`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum DevbindCmd {
    /// List network and storage devices with driver, IOMMU group and whether VFIO can take
    /// them.
    Status,
    /// Bind devices to a driver (vfio-pci by default) through driver_override.
    Bind {
        /// PCI addresses (0000:00:04.0 or 00:04.0).
        #[arg(required = true)]
        addrs: Vec<PciAddr>,
        /// The driver to bind to: a kernel driver's name (letters, digits, '_', '-').
        #[arg(long, default_value = VFIO_PCI, value_parser = parse_driver_name)]
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

/// A driver name, and nothing else: 1..=[`MAX_DRIVER_NAME`] ASCII letters, digits, `_` and
/// `-`, not starting with `-`. So no `/` or `..` (the name becomes a sysfs path component),
/// no leading `-` (it becomes `modprobe`'s argument, not an option), no spaces or controls.
pub fn parse_driver_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_DRIVER_NAME {
        return Err(format!(
            "{s:?} is not a driver name: 1 to {MAX_DRIVER_NAME} characters"
        ));
    }
    if s.starts_with('-') {
        return Err(format!("{s:?} is not a driver name: it starts with '-'"));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(format!(
            "{s:?} is not a driver name: {c:?} is not allowed (letters, digits, '_' and '-')"
        ));
    }
    Ok(s.to_owned())
}
