//! PCI: addresses, sysfs enumeration and driver binding, config space, capabilities.
//!
//! ```no_run
//! use sluice_pmd::pci::{caps, ConfigSpace, PciAddr, Sysfs, SysfsConfig};
//!
//! let sysfs = Sysfs::system();
//! for dev in sysfs.devices()?.iter().filter(|d| d.is_network()) {
//!     println!("{} {:04x}:{:04x} driver {:?}", dev.addr, dev.vendor, dev.device, dev.driver);
//! }
//! let addr: PciAddr = "00:04.0".parse()?;
//! let cfg = SysfsConfig::open(addr, &sysfs.device_dir(addr))?;
//! for cap in caps::virtio_caps(&cfg)? {
//!     println!("{:?} in BAR{} at {:#x}", cap.cfg_type, cap.bar, cap.offset);
//! }
//! # Ok::<(), sluice_pmd::Error>(())
//! ```

mod addr;
pub mod caps;
mod config;
mod error;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
mod sysfs;

pub use addr::PciAddr;
pub use config::{CONFIG_SIZE, CONFIG_SIZE_EXTENDED, ConfigBytes, ConfigSpace, SysfsConfig, reg};
pub use error::PciError;
pub use sysfs::{IommuGroup, NetInterface, PciDevice, Sysfs, VFIO_PCI};

#[cfg(test)]
mod tests;
