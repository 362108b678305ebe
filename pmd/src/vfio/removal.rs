//! The removal watch of a VFIO device: the kernel's request to have it back.
//!
//! When a device bound to vfio-pci is hot-unplugged (or unbound), the kernel's vfio-pci
//! `remove` blocks until user space has closed the device, every few seconds signalling the
//! eventfd registered at `VFIO_PCI_REQ_IRQ_INDEX` (the kernel's `vfio_pci_core_request`). The
//! device's BAR mappings hold the device file open too, so a process that ignores the request
//! blocks the removal forever (and the slot never powers off).
//!
//! [`Watch`] is a thread per device, blocked on that eventfd. On the first request it
//! releases the device: every BAR mapping is replaced in place with memory reading all ones
//! (what a read of a removed PCIe device returns, so drivers take their all-ones path and
//! nothing raises SIGBUS), the device descriptor is pointed at `/dev/null`, and
//! [`Registers::removed`](crate::regs::Registers::removed) turns true for the drivers' queues.
//! vfio-pci then disables the device (bus mastering off) as it is released, so memory
//! the device was given can go back to its pools.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::error::Error;
use crate::pci::PciAddr;
use crate::vfio::sys_req::{self as sys, BarSet};
use crate::vfio::{Target, VfioError};

/// A device's removal watcher thread; stopped (and joined) when dropped.
#[derive(Debug)]
pub(super) struct Watch {
    efd: Arc<OwnedFd>,
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Registers an eventfd as `device`'s request channel and starts the thread that
    /// releases the device through `bars` and `device` when it fires.
    pub(super) fn start(
        addr: PciAddr,
        device: Arc<File>,
        bars: Arc<BarSet>,
    ) -> Result<Watch, Error> {
        let efd = Arc::new(sys::eventfd().map_err(|source| VfioError::Removal {
            addr,
            what: "eventfd",
            source,
        })?);
        sys::device_set_irq_eventfd(device.as_fd(), sys::REQ_IRQ_INDEX, efd.as_fd()).map_err(
            |source| VfioError::Ioctl {
                target: Target::Device(addr),
                ioctl: "VFIO_DEVICE_SET_IRQS (request)",
                source,
            },
        )?;
        let quit = Arc::new(AtomicBool::new(false));
        let (e, q) = (efd.clone(), quit.clone());
        let thread = std::thread::Builder::new()
            .name("vfio-req".into())
            .spawn(move || watch(addr, &e, &q, &device, &bars))
            .map_err(|source| VfioError::Removal {
                addr,
                what: "spawning the watcher thread",
                source,
            })?;
        Ok(Watch {
            efd,
            quit,
            thread: Some(thread),
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Release);
        // Wakes the thread if it still waits; if the write fails it cannot be woken, and is
        // left to end with the process rather than block this drop.
        if sys::eventfd_write(self.efd.as_fd()).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

/// The thread: waits for the request (or the quit), then releases the device.
fn watch(addr: PciAddr, efd: &OwnedFd, quit: &AtomicBool, device: &File, bars: &BarSet) {
    if sys::eventfd_read(efd.as_fd()).is_err() || quit.load(Ordering::Acquire) {
        return;
    }
    eprintln!(
        "sluice-pmd: {addr}: the kernel asks for the device back (hot-unplug or unbind): \
         releasing it; its ports and queues go down"
    );
    let failed = bars.release();
    if failed > 0 {
        eprintln!("sluice-pmd: warning: {addr}: {failed} BAR mapping(s) could not be replaced");
    }
    if let Err(e) = sys::replace_with_dev_null(device.as_fd()) {
        eprintln!("sluice-pmd: warning: {addr}: cannot close the device descriptor: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::sync::Arc;

    use crate::mmio::MmioRegion;
    use crate::regs::Registers;
    use crate::vfio::sys::Mmap;
    use crate::vfio::sys_req::BarSet;

    /// A file standing in for a device: a shared mapping of it plays a BAR.
    fn bar_file(name: &str) -> std::fs::File {
        let path = std::env::temp_dir().join(format!("sluice-bar-{name}-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(&[0x5a; 8192]).unwrap();
        f
    }

    #[test]
    fn release_replaces_live_mappings_with_all_ones_and_spares_the_device() {
        let file = bar_file("release");
        let set = Arc::new(BarSet::default());
        let map = |off| {
            let mut m = Mmap::map_shared(file.as_fd(), off, 4096).unwrap();
            m.join(&set);
            MmioRegion::from_mmap(m)
        };
        let (bar0, bar1) = (map(0), map(4096));
        let gone = map(0);
        drop(gone); // unmapped before the release: its range is not touched again
        assert_eq!(bar0.read32(0x1c).unwrap(), 0x5a5a_5a5a);
        assert!(!bar0.removed());
        assert_eq!(set.release(), 0, "every live mapping replaced");
        assert!(bar0.removed() && bar1.removed());
        // Reads are those of a removed PCIe device; nothing faults.
        assert_eq!(bar0.read32(0x1c).unwrap(), u32::MAX);
        assert_eq!(bar1.read8(4095).unwrap(), 0xff);
        // Writes (a doorbell rung late) land in the replacement, not in the device.
        bar1.write16(0x10, 7).unwrap();
        drop((bar0, bar1));
        let mut back = [0u8; 8192];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut back, 0).unwrap();
        assert!(
            back.iter().all(|&b| b == 0x5a),
            "the device saw nothing after the release"
        );
    }
}
