//! `sluice-devbind`: show network and storage PCI devices and move them between their kernel
//! drivers and vfio-pci (the role of DPDK's `dpdk-devbind.py`).
//!
//! Binding uses `driver_override` (Linux ≥ 3.16): write the driver's name there, unbind the
//! device from its current driver, then ask the kernel to probe it again, which now only
//! considers that driver. Unlike `new_id`, this takes exactly the devices named and no other
//! device with the same IDs.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_pmd::pci::{PciAddr, PciDevice, Sysfs, VFIO_PCI};
use sluice_pmd::vfio::VfioError;

/// Drivers that may share an IOMMU group with a vfio-pci device (they do no DMA of their own).
const GROUP_SAFE_DRIVERS: [&str; 3] = [VFIO_PCI, "pci-stub", "pcieport"];

/// How long `modprobe` may take.
const MODPROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong while binding or unbinding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevbindError {
    /// The device layer failed (sysfs unreadable, no such device, no IOMMU group, ...).
    #[error(transparent)]
    Pmd(#[from] sluice_pmd::Error),

    /// The NIC is in use by the kernel.
    #[error(
        "{addr} has kernel network interface {} up; taking it would cut that link. Bring it \
         down first (`ip link set {} down`) or pass --force",
        ifaces.join(", "), ifaces.first().map(String::as_str).unwrap_or("IF")
    )]
    InterfaceUp {
        /// The device.
        addr: PciAddr,
        /// Its interfaces that are up.
        ifaces: Vec<String>,
    },

    /// The driver name is not one (a path, an option, odd characters): it would go into a
    /// sysfs path and a `modprobe` command line.
    #[error("{0}")]
    BadDriverName(String),

    /// The driver is not registered and loading it failed.
    #[error("driver {driver} is not loaded and `modprobe {driver}` failed: {why}")]
    DriverMissing {
        /// The driver.
        driver: String,
        /// What modprobe said.
        why: String,
    },

    /// After probing, the device is not on the requested driver.
    #[error(
        "{addr}: {driver} did not take the device (now {}); see `dmesg | tail` for why{}",
        now.as_deref().unwrap_or("unbound"),
        if driver == VFIO_PCI { " (vfio-pci refuses devices without an IOMMU group)" } else { "" }
    )]
    NotTaken {
        /// The device.
        addr: PciAddr,
        /// The driver asked for.
        driver: String,
        /// The driver it is on now, if any.
        now: Option<String>,
    },
}

/// Binds, unbinds and reports on a sysfs tree.
#[derive(Debug)]
pub struct Devbind {
    sysfs: Sysfs,
    /// Whether this is the live system (`/sys`): only then are `modprobe` and `/dev/vfio`
    /// consulted.
    live: bool,
}

impl Devbind {
    /// A binder for the sysfs tree at `root` (`/sys` on a live system).
    pub fn new(root: &Path) -> Self {
        Devbind {
            sysfs: Sysfs::new(root),
            live: root == Path::new("/sys"),
        }
    }

    /// The sysfs tree.
    pub fn sysfs(&self) -> &Sysfs {
        &self.sysfs
    }

    /// The `status` report: network and storage devices (and anything on vfio-pci), with
    /// driver, IOMMU group and whether VFIO can take each.
    ///
    /// # Errors
    ///
    /// [`DevbindError::Pmd`] if sysfs cannot be read.
    pub fn status(&self) -> Result<String, DevbindError> {
        let devices = self.sysfs.devices()?;
        let mut out = String::new();
        if self.noiommu_mode() {
            out.push_str(
                "VFIO no-IOMMU mode is on: vfio-pci gives each device a noiommu-N group and \
                 nothing protects memory from its DMA (IOVA = physical address).\n\n",
            );
        } else if !self.sysfs.has_iommu_groups() {
            out.push_str(
                "No IOMMU groups: the IOMMU is off. Boot with intel_iommu=on (or amd_iommu=on), or \
                 enable no-IOMMU mode (`modprobe vfio enable_unsafe_noiommu_mode=1`, needs \
                 CONFIG_VFIO_NOIOMMU).\n\n",
            );
        }
        type Pick = fn(&PciDevice) -> bool;
        let sections: [(&str, Pick); 3] = [
            ("Network devices", |d| d.is_network()),
            ("Storage devices", |d| d.is_storage()),
            ("Other devices on vfio-pci", |d| {
                d.is_vfio() && !d.is_network() && !d.is_storage()
            }),
        ];
        for (title, pick) in sections {
            let picked: Vec<&PciDevice> = devices.iter().filter(|d| pick(d)).collect();
            if picked.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title}");
            for d in picked {
                let _ = writeln!(
                    out,
                    "  {}  {:04x}:{:04x}  driver={:<12} group={:<4} numa={:<3} {}{}",
                    d.addr,
                    d.vendor,
                    d.device,
                    d.driver.as_deref().unwrap_or("-"),
                    d.iommu_group
                        .as_ref()
                        .map(|g| g.node_name())
                        .unwrap_or_else(|| "-".into()),
                    d.numa_node
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    interfaces(d),
                    self.verdict(d),
                );
            }
            out.push('\n');
        }
        Ok(out)
    }

    /// Whether VFIO can take `d`, and if not, why.
    fn verdict(&self, d: &PciDevice) -> String {
        let Some(group) = &d.iommu_group else {
            if self.noiommu_mode() {
                return "vfio: yes (no-IOMMU mode)".into();
            }
            return "vfio: no (no IOMMU group: IOMMU off)".into();
        };
        let blockers: Vec<String> = self
            .sysfs
            .group_members(group.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|&m| m != d.addr)
            .filter_map(|m| match self.sysfs.driver(m).ok().flatten() {
                Some(drv) if !GROUP_SAFE_DRIVERS.contains(&drv.as_str()) => {
                    Some(format!("{m} ({drv})"))
                }
                _ => None,
            })
            .collect();
        let node = Path::new("/dev/vfio").join(group.node_name());
        if d.is_vfio() {
            if !blockers.is_empty() {
                return format!(
                    "vfio: bound, group not viable: also bind {}",
                    blockers.join(", ")
                );
            }
            if self.live && !node.exists() {
                return format!("vfio: bound, but {} is missing", node.display());
            }
            return "vfio: bound, ready".into();
        }
        if !blockers.is_empty() {
            return format!("vfio: group shared with {}", blockers.join(", "));
        }
        if d.net_interfaces.iter().any(|i| i.up) {
            return "vfio: yes with --force (interface up)".into();
        }
        "vfio: yes".into()
    }

    /// Binds each of `addrs` to `driver`, refusing NICs whose kernel interface is up unless
    /// `force`. Returns one line per device saying what was done.
    ///
    /// Stops at the first device that fails; the devices before it stay bound.
    ///
    /// # Errors
    ///
    /// [`DevbindError::BadDriverName`] (checked before anything is read or written),
    /// [`DevbindError::InterfaceUp`], [`DevbindError::DriverMissing`],
    /// [`DevbindError::NotTaken`], or [`DevbindError::Pmd`] (no such device, IOMMU off,
    /// sysfs write refused).
    pub fn bind(
        &self,
        addrs: &[PciAddr],
        driver: &str,
        force: bool,
    ) -> Result<Vec<String>, DevbindError> {
        parse_driver_name(driver).map_err(DevbindError::BadDriverName)?;
        let mut report = Vec::new();
        // Check every device before touching any.
        let mut todo = Vec::new();
        for &addr in addrs {
            let d = self.sysfs.device(addr)?;
            if d.driver.as_deref() == Some(driver) {
                report.push(format!("{addr}: already bound to {driver}"));
                continue;
            }
            let up: Vec<String> = d
                .net_interfaces
                .iter()
                .filter(|i| i.up)
                .map(|i| i.name.clone())
                .collect();
            if !up.is_empty() && !force {
                return Err(DevbindError::InterfaceUp { addr, ifaces: up });
            }
            // In no-IOMMU mode a device has no group until vfio-pci makes one (`noiommu-N`).
            if driver == VFIO_PCI && d.iommu_group.is_none() && !self.noiommu_mode() {
                return Err(sluice_pmd::Error::from(VfioError::NoIommuGroup { addr }).into());
            }
            todo.push(d);
        }
        if !todo.is_empty() {
            self.ensure_driver(driver)?;
        }
        for d in todo {
            let addr = d.addr;
            self.sysfs.set_driver_override(addr, Some(driver))?;
            self.sysfs.unbind(addr)?;
            // drivers_probe answers an error when no driver accepts the device; the check
            // below reports that with the driver now in charge.
            let _ = self.sysfs.drivers_probe(addr);
            let now = self.sysfs.driver(addr)?;
            if now.as_deref() != Some(driver) {
                // Give the device back to its previous driver rather than leave it unbound.
                let _ = self.sysfs.set_driver_override(addr, None);
                let _ = self.sysfs.drivers_probe(addr);
                return Err(DevbindError::NotTaken {
                    addr,
                    driver: driver.into(),
                    now,
                });
            }
            report.push(format!(
                "{addr}: {} -> {driver}",
                d.driver.as_deref().unwrap_or("no driver")
            ));
        }
        Ok(report)
    }

    /// Unbinds each of `addrs` from its driver and clears its `driver_override`, so that a
    /// later probe (or `bind ADDR --driver NAME`) gives it back to a kernel driver.
    ///
    /// # Errors
    ///
    /// [`DevbindError::Pmd`] for a missing device or a refused sysfs write.
    pub fn unbind(&self, addrs: &[PciAddr]) -> Result<Vec<String>, DevbindError> {
        let mut report = Vec::new();
        for &addr in addrs {
            let d = self.sysfs.device(addr)?;
            self.sysfs.unbind(addr)?;
            self.sysfs.set_driver_override(addr, None)?;
            report.push(format!(
                "{addr}: unbound from {}",
                d.driver.as_deref().unwrap_or("no driver")
            ));
        }
        Ok(report)
    }

    /// Whether VFIO's unsafe no-IOMMU mode is on (the `vfio` module loaded with
    /// `enable_unsafe_noiommu_mode=1`, a kernel with `CONFIG_VFIO_NOIOMMU`): then vfio-pci
    /// gives a device without an IOMMU group a `noiommu-N` group of its own when it binds.
    fn noiommu_mode(&self) -> bool {
        let param = self
            .sysfs
            .root()
            .join("module/vfio/parameters/enable_unsafe_noiommu_mode");
        std::fs::read_to_string(param).is_ok_and(|v| matches!(v.trim(), "Y" | "1"))
    }

    /// Loads `driver` with `modprobe` if it is not registered (live system only).
    fn ensure_driver(&self, driver: &str) -> Result<(), DevbindError> {
        if self.sysfs.driver_loaded(driver) {
            return Ok(());
        }
        if !self.live {
            return Err(DevbindError::DriverMissing {
                driver: driver.into(),
                why: "not a live sysfs (modprobe skipped)".into(),
            });
        }
        modprobe(driver).map_err(|why| DevbindError::DriverMissing {
            driver: driver.into(),
            why,
        })?;
        if self.sysfs.driver_loaded(driver) {
            Ok(())
        } else {
            Err(DevbindError::DriverMissing {
                driver: driver.into(),
                why: "it ran but registered no PCI driver of that name".into(),
            })
        }
    }
}

/// Runs `modprobe driver`, bounded by [`MODPROBE_TIMEOUT`].
fn modprobe(driver: &str) -> Result<(), String> {
    let mut child = Command::new("modprobe")
        .arg(driver)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run modprobe: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("{status}: {}", err.trim()));
            }
            Ok(None) if start.elapsed() > MODPROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer after {}s", MODPROBE_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn interfaces(d: &PciDevice) -> String {
    if d.net_interfaces.is_empty() {
        return String::new();
    }
    let list: Vec<String> = d
        .net_interfaces
        .iter()
        .map(|i| format!("{}{}", i.name, if i.up { "(up)" } else { "" }))
        .collect();
    format!("if={}  ", list.join(","))
}

mod args;
#[cfg(test)]
mod tests;

pub use args::{DevbindArgs, DevbindCmd, MAX_DRIVER_NAME, parse_driver_name};
