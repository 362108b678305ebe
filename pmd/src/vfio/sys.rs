//! Every VFIO system call, each a small safe function.
//!
//! Each function issues one ioctl (or `mmap`) on a file descriptor the caller owns, with an
//! argument this function builds and owns for the duration of the call, and returns the
//! kernel's answer or the errno as an `io::Error`. The callers above (`container`, `group`,
//! `device`) attach the ioctl's name and the object it was issued on to make an
//! [`VfioError::Ioctl`](crate::vfio::VfioError::Ioctl). Structures and constants come from
//! `vfio-bindings` (generated from `linux/vfio.h`); the request numbers are computed here,
//! since the bindings carry only `VFIO_TYPE` and `VFIO_BASE`.
//!
//! Structure layouts are checked at compile time by the bindings themselves; the argsz values
//! written here are `size_of` those structures.

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use vfio_bindings::bindings::vfio as b;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: direction and size bits are zero for every VFIO ioctl.
const fn req(n: u32) -> libc::c_ulong {
    ((b::VFIO_TYPE as u32) << 8 | (b::VFIO_BASE + n)) as libc::c_ulong
}

const GET_API_VERSION: libc::c_ulong = req(0);
const CHECK_EXTENSION: libc::c_ulong = req(1);
const SET_IOMMU: libc::c_ulong = req(2);
const GROUP_GET_STATUS: libc::c_ulong = req(3);
const GROUP_SET_CONTAINER: libc::c_ulong = req(4);
const GROUP_GET_DEVICE_FD: libc::c_ulong = req(6);
const DEVICE_GET_INFO: libc::c_ulong = req(7);
const DEVICE_GET_REGION_INFO: libc::c_ulong = req(8);
pub(super) const DEVICE_SET_IRQS: libc::c_ulong = req(10);
const DEVICE_RESET: libc::c_ulong = req(11);
const IOMMU_GET_INFO: libc::c_ulong = req(12);
const IOMMU_MAP_DMA: libc::c_ulong = req(13);
const IOMMU_UNMAP_DMA: libc::c_ulong = req(14);

// linux/vfio.h: _IO(VFIO_TYPE, VFIO_BASE + n) with VFIO_TYPE ';' and VFIO_BASE 100, i.e.
// 0x3B64 + n.
const _: () = assert!(GET_API_VERSION == 0x3b64 && IOMMU_UNMAP_DMA == 0x3b64 + 14);

/// The largest info buffer the kernel may ask for (argsz); a bigger request is refused rather
/// than allocated. Real answers are around a hundred bytes.
const MAX_INFO_BYTES: u32 = 64 << 10;

/// Converts an ioctl return value into a result, capturing errno.
pub(super) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `VFIO_GET_API_VERSION` on a container.
pub(crate) fn get_api_version(container: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: a value-less ioctl on a descriptor the caller keeps open for the call.
    check(unsafe { libc::ioctl(container.as_raw_fd(), GET_API_VERSION) })
}

/// `VFIO_CHECK_EXTENSION`: whether the container supports IOMMU type `ext`.
pub(crate) fn check_extension(container: BorrowedFd<'_>, ext: u32) -> io::Result<bool> {
    // SAFETY: the argument is passed by value; no memory is shared with the kernel.
    check(unsafe { libc::ioctl(container.as_raw_fd(), CHECK_EXTENSION, ext as libc::c_ulong) })
        .map(|r| r > 0)
}

/// `VFIO_SET_IOMMU`: pick the IOMMU model; needs a group attached.
pub(crate) fn set_iommu(container: BorrowedFd<'_>, iommu_type: u32) -> io::Result<()> {
    // SAFETY: the argument is passed by value.
    check(unsafe {
        libc::ioctl(
            container.as_raw_fd(),
            SET_IOMMU,
            iommu_type as libc::c_ulong,
        )
    })
    .map(drop)
}

/// `VFIO_GROUP_GET_STATUS`: the group's flags (`VIABLE` 1, `CONTAINER_SET` 2).
pub(crate) fn group_get_status(group: BorrowedFd<'_>) -> io::Result<u32> {
    let mut status = b::vfio_group_status {
        argsz: size_of::<b::vfio_group_status>() as u32,
        flags: 0,
    };
    // SAFETY: `status` is a live, writable `vfio_group_status` whose argsz is its size; the
    // kernel writes at most that many bytes during the call.
    check(unsafe { libc::ioctl(group.as_raw_fd(), GROUP_GET_STATUS, &mut status) })?;
    Ok(status.flags)
}

/// `VFIO_GROUP_SET_CONTAINER`: attach the group to the container.
pub(crate) fn group_set_container(
    group: BorrowedFd<'_>,
    container: BorrowedFd<'_>,
) -> io::Result<()> {
    let fd: libc::c_int = container.as_raw_fd();
    // SAFETY: the kernel reads one `int` through the pointer, which points at `fd` for the
    // whole call.
    check(unsafe { libc::ioctl(group.as_raw_fd(), GROUP_SET_CONTAINER, &fd) }).map(drop)
}

/// `VFIO_GROUP_GET_DEVICE_FD`: a descriptor for the device named `name` ("0000:00:04.0").
pub(crate) fn group_get_device_fd(group: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; the kernel only reads it.
    let fd = check(unsafe { libc::ioctl(group.as_raw_fd(), GROUP_GET_DEVICE_FD, name.as_ptr()) })?;
    // SAFETY: on success the ioctl returns a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `VFIO_DEVICE_GET_INFO`.
pub(crate) fn device_get_info(device: BorrowedFd<'_>) -> io::Result<b::vfio_device_info> {
    let mut info = b::vfio_device_info {
        argsz: size_of::<b::vfio_device_info>() as u32,
        ..Default::default()
    };
    // SAFETY: `info` is a live, writable `vfio_device_info` whose argsz is its size.
    check(unsafe { libc::ioctl(device.as_raw_fd(), DEVICE_GET_INFO, &mut info) })?;
    Ok(info)
}

/// `VFIO_DEVICE_GET_REGION_INFO` for region `index`: the fixed part, and the whole answer
/// (fixed part followed by the capability chain) as bytes when the region has capabilities.
pub(crate) fn device_get_region_info(
    device: BorrowedFd<'_>,
    index: u32,
) -> io::Result<(b::vfio_region_info, Vec<u8>)> {
    let mut info = b::vfio_region_info {
        argsz: size_of::<b::vfio_region_info>() as u32,
        index,
        ..Default::default()
    };
    // SAFETY: `info` is a live, writable `vfio_region_info` whose argsz is its size; the
    // kernel writes no more than argsz bytes and sets argsz to what it needs.
    check(unsafe { libc::ioctl(device.as_raw_fd(), DEVICE_GET_REGION_INFO, &mut info) })?;
    let needed = info.argsz;
    if info.flags & b::VFIO_REGION_INFO_FLAG_CAPS == 0
        || needed as usize <= size_of::<b::vfio_region_info>()
    {
        return Ok((info, Vec::new()));
    }
    let mut buf = info_buffer(needed)?;
    let head = b::vfio_region_info {
        argsz: needed,
        index,
        ..Default::default()
    };
    write_head(&mut buf, &head);
    // SAFETY: `buf` is at least `needed` bytes, 8-byte aligned (a `Vec<u64>`), starts with a
    // `vfio_region_info` whose argsz is `needed`, and lives until after the call.
    check(unsafe { libc::ioctl(device.as_raw_fd(), DEVICE_GET_REGION_INFO, buf.as_mut_ptr()) })?;
    let bytes = to_bytes(&buf, needed);
    Ok((read_head(&bytes), bytes))
}

/// `VFIO_DEVICE_RESET`.
pub(crate) fn device_reset(device: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a value-less ioctl on a descriptor the caller keeps open.
    check(unsafe { libc::ioctl(device.as_raw_fd(), DEVICE_RESET) }).map(drop)
}

/// `VFIO_IOMMU_GET_INFO` (type1): the whole answer, fixed part and capability chain, as bytes.
///
/// Asked twice when the first answer says a larger argsz is needed (linux/vfio.h: an INFO
/// call with too small a buffer succeeds and sets argsz to the size needed;
/// docs/devices.md#vfio).
pub(crate) fn iommu_get_info(container: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut argsz = size_of::<b::vfio_iommu_type1_info>() as u32;
    for _ in 0..2 {
        let mut buf = info_buffer(argsz)?;
        let head = b::vfio_iommu_type1_info {
            argsz,
            ..Default::default()
        };
        write_head(&mut buf, &head);
        // SAFETY: `buf` is at least argsz bytes, 8-byte aligned, starts with a
        // `vfio_iommu_type1_info` whose argsz is the buffer size, and outlives the call.
        check(unsafe { libc::ioctl(container.as_raw_fd(), IOMMU_GET_INFO, buf.as_mut_ptr()) })?;
        let answer: b::vfio_iommu_type1_info = read_head(&to_bytes(&buf, argsz));
        if answer.argsz <= argsz {
            return Ok(to_bytes(&buf, argsz));
        }
        argsz = answer.argsz;
    }
    Err(io::Error::other(
        "VFIO_IOMMU_GET_INFO kept asking for a larger buffer",
    ))
}

/// `VFIO_IOMMU_MAP_DMA`: map `size` bytes at `vaddr` to `iova`, readable and writable by
/// devices.
///
/// The caller guarantees the range stays mapped in this process until it is unmapped from
/// the IOMMU; the kernel pins the pages either way, so breaking that promise can only make
/// the device see stale pages, not corrupt this process.
pub(crate) fn iommu_map_dma(
    container: BorrowedFd<'_>,
    vaddr: u64,
    iova: u64,
    size: u64,
) -> io::Result<()> {
    let map = b::vfio_iommu_type1_dma_map {
        argsz: size_of::<b::vfio_iommu_type1_dma_map>() as u32,
        flags: b::VFIO_DMA_MAP_FLAG_READ | b::VFIO_DMA_MAP_FLAG_WRITE,
        vaddr,
        iova,
        size,
    };
    // SAFETY: `map` is a live `vfio_iommu_type1_dma_map` with argsz = its size; the kernel
    // only reads it. The pages it names are validated (and pinned) by the kernel.
    check(unsafe { libc::ioctl(container.as_raw_fd(), IOMMU_MAP_DMA, &map) }).map(drop)
}

/// `VFIO_IOMMU_UNMAP_DMA`: unmap exactly `iova..iova+size`; returns the bytes unmapped.
pub(crate) fn iommu_unmap_dma(container: BorrowedFd<'_>, iova: u64, size: u64) -> io::Result<u64> {
    let mut unmap = b::vfio_iommu_type1_dma_unmap {
        argsz: size_of::<b::vfio_iommu_type1_dma_unmap>() as u32,
        flags: 0,
        iova,
        size,
        data: Default::default(),
    };
    // SAFETY: `unmap` is a live, writable `vfio_iommu_type1_dma_unmap` with argsz = its fixed
    // size (no trailing data: no dirty bitmap flag is set); the kernel writes back `size`.
    check(unsafe { libc::ioctl(container.as_raw_fd(), IOMMU_UNMAP_DMA, &mut unmap) })?;
    Ok(unmap.size)
}

/// A `MAP_SHARED` mapping of part of a device file (a BAR), unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
    /// The device's live BAR mappings, which a removal replaces (see [`BarSet`]).
    set: Option<std::sync::Arc<super::sys_req::BarSet>>,
}

// SAFETY: the mapping is owned by this value alone and accessed only through raw pointers by
// `MmioRegion`; nothing in it is tied to the creating thread.
unsafe impl Send for Mmap {}
// SAFETY: `&Mmap` exposes only the pointer and length.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` at file offset `offset`, read-write and shared.
    pub(crate) fn map_shared(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Mmap> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL), so no existing memory is
        // replaced; the result is checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Mmap {
            ptr,
            len,
            set: None,
        })
    }

    /// Enters the mapping in `set`, so that a removal of the device replaces it.
    pub(crate) fn join(&mut self, set: &std::sync::Arc<super::sys_req::BarSet>) {
        set.lock().push((self.ptr.as_ptr() as usize, self.len));
        self.set = Some(set.clone());
    }

    /// Whether the device behind the mapping was released after a removal request.
    pub(crate) fn removed(&self) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_removed())
    }

    /// Start of the mapping.
    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // Out of the set first, under its lock: a removal never replaces an address range
        // that is no longer this mapping's.
        let set = self.set.take();
        let mut guard = set.as_ref().map(|s| s.lock());
        if let Some(maps) = guard.as_mut() {
            let me = (self.ptr.as_ptr() as usize, self.len);
            maps.retain(|m| *m != me);
        }
        // SAFETY: `ptr..ptr+len` is exactly the mapping `map_shared` created (or the
        // anonymous one a removal put in its place) and nothing else unmaps it;
        // `MmioRegion`, the only user, is being dropped with it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A zeroed, 8-byte-aligned buffer of at least `bytes` bytes for a variable-size info call.
fn info_buffer(bytes: u32) -> io::Result<Vec<u64>> {
    if bytes > MAX_INFO_BYTES {
        return Err(io::Error::other(format!(
            "the kernel asked for a {bytes}-byte info buffer"
        )));
    }
    Ok(vec![0u64; (bytes as usize).div_ceil(8)])
}

/// The first `len` bytes of `buf`.
fn to_bytes(buf: &[u64], len: u32) -> Vec<u8> {
    buf.iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(len as usize)
        .collect()
}

/// Copies `head` (a plain-old-data bindings struct) to the start of `buf`.
fn write_head<T: Copy>(buf: &mut [u64], head: &T) {
    assert!(size_of::<T>() <= buf.len() * 8);
    // SAFETY: `T` is a `#[repr(C)]` bindings struct of integers (Copy, no padding invariants);
    // the destination holds at least size_of::<T>() bytes (asserted) and does not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (head as *const T).cast::<u8>(),
            buf.as_mut_ptr().cast::<u8>(),
            size_of::<T>(),
        )
    };
}

/// Reads a plain-old-data bindings struct from the start of `bytes` (zero-filled if short).
fn read_head<T: Copy + Default>(bytes: &[u8]) -> T {
    let mut out = T::default();
    let n = size_of::<T>().min(bytes.len());
    // SAFETY: `T` is a `#[repr(C)]` bindings struct of integers, valid for any bit pattern;
    // at most size_of::<T>() bytes are copied into it from a slice at least that long.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut out as *mut T).cast::<u8>(), n) };
    out
}
