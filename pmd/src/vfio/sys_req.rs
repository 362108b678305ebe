//! The system calls of a device's removal watch (`removal`), each a small safe function: the
//! request eventfd and its registration (`VFIO_DEVICE_SET_IRQS`), and the release of a
//! device's BAR mappings ([`BarSet`]) and descriptor.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use vfio_bindings::bindings::vfio as b;

use super::sys::{DEVICE_SET_IRQS, check};

/// The live BAR mappings of one device and whether it was released after a removal
/// request. Shared by the device's [`Mmap`]s and its removal watcher.
#[derive(Debug, Default)]
pub(crate) struct BarSet {
    maps: std::sync::Mutex<Vec<(usize, usize)>>,
    removed: std::sync::atomic::AtomicBool,
}

impl BarSet {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(usize, usize)>> {
        // Pushes and retains cannot leave the list half-written.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether [`release`](Self::release) ran (one relaxed load: data path).
    #[inline]
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces every live mapping, in place, with private anonymous memory that reads all
    /// ones (what a PCIe read of a removed device returns), so that a driver still touching
    /// the registers neither faults (SIGBUS) nor reaches the device, and the mappings no
    /// longer hold the device file open. Marks the set removed. Returns how many mappings
    /// failed to be replaced (they keep the BAR).
    pub(crate) fn release(&self) -> usize {
        self.removed
            .store(true, std::sync::atomic::Ordering::Release);
        let maps = self.lock();
        let mut failed = 0;
        for &(addr, len) in maps.iter() {
            // SAFETY: `addr..addr+len` is a live mapping of this set: entries leave the list
            // (under this lock) before their mapping is unmapped, so the range is still ours.
            // MAP_FIXED replaces it atomically; every access to it is a volatile load or
            // store through `MmioRegion`, valid on either mapping. The new mapping is fresh,
            // private and writable, so filling it touches no other memory.
            let p = unsafe {
                libc::mmap(
                    addr as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                failed += 1;
                continue;
            }
            // SAFETY: as above: `len` writable bytes at `p`, owned by this mapping.
            unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0xFF, len) };
        }
        failed
    }
}

/// A new eventfd (counter 0, close-on-exec, blocking reads).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    // SAFETY: on success eventfd returns a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Blocks until the eventfd's counter is non-zero; returns and clears it.
pub(crate) fn eventfd_read(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut v = 0u64;
    loop {
        // SAFETY: reads 8 bytes into `v`, which lives for the call.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            return Ok(v);
        }
        let e = io::Error::last_os_error();
        if n < 0 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(e);
    }
}

/// Adds 1 to the eventfd's counter.
pub(crate) fn eventfd_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    let v = 1u64;
    // SAFETY: writes the 8 bytes of `v`, which lives for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&v as *const u64).cast(), 8) };
    if n == 8 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `VFIO_PCI_REQ_IRQ_INDEX`: the device-request "interrupt", signalled when the kernel wants
/// the device back (hot-unplug, unbind).
pub(crate) const REQ_IRQ_INDEX: u32 = 4;

/// `struct vfio_irq_set` with one eventfd as its data.
#[repr(C)]
struct IrqSetOne {
    argsz: u32,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
    fd: i32,
}

/// Routes IRQ `index` of the device to `eventfd` (`VFIO_DEVICE_SET_IRQS`, `ACTION_TRIGGER |
/// DATA_EVENTFD`, one vector).
pub(crate) fn device_set_irq_eventfd(
    device: BorrowedFd<'_>,
    index: u32,
    eventfd: BorrowedFd<'_>,
) -> io::Result<()> {
    let set = IrqSetOne {
        argsz: size_of::<IrqSetOne>() as u32,
        flags: b::VFIO_IRQ_SET_DATA_EVENTFD | b::VFIO_IRQ_SET_ACTION_TRIGGER,
        index,
        start: 0,
        count: 1,
        fd: eventfd.as_raw_fd(),
    };
    // SAFETY: the kernel reads argsz bytes of `set`, which lives for the call.
    check(unsafe { libc::ioctl(device.as_raw_fd(), DEVICE_SET_IRQS, &set) }).map(drop)
}

/// Points descriptor `fd` at `/dev/null` (`dup2`), closing what it was: the device file of a
/// released device, whose owner (a `File`) keeps the number and closes it later.
pub(crate) fn replace_with_dev_null(fd: BorrowedFd<'_>) -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: both descriptors are open for the call; dup2 atomically closes `fd`'s old file
    // and makes the number refer to /dev/null, so its owner's later close stays valid.
    check(unsafe { libc::dup2(null.as_raw_fd(), fd.as_raw_fd()) }).map(drop)
}
