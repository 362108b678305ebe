//! Hugepage-backed, locked, prefaulted anonymous memory.
//!
//! [`HugeMem`] is the raw material of every DMA region and mempool: one anonymous `mmap`
//! (`MAP_HUGETLB` with the page-size bits for 2 MiB and 1 GiB pages), prefaulted with
//! `MAP_POPULATE` so that the first packet does not take a page fault, and `mlock`ed. Anonymous
//! mappings are zero-filled by the kernel, so the memory starts out all zeroes.
//!
//! When hugepages are not available, [`HugePagePolicy`] decides: fail, or fall back to 4 KiB
//! pages with one warning per process (DPDK without `--no-huge`, but hugepages missing), or use
//! 4 KiB pages from the start (DPDK `--no-huge`).
//!
//! The pages are private to this process unless [`MemBacking::Memfd`] is asked for: then they
//! live in a memfd (`memfd_create(2)`, with `MFD_HUGETLB` and the page-size bits for
//! hugepages) mapped shared, and another process that is handed the descriptor, such as a
//! vhost-user backend, maps the very same pages.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::str::FromStr;
use std::sync::Once;

use memmap2::{Advice, MmapOptions, MmapRaw};

use crate::error::Error;

/// Size of the pages backing a mapping.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PageSize {
    /// 4 KiB base pages.
    Size4K,
    /// 2 MiB hugepages (x86-64 PMD level).
    Size2M,
    /// 1 GiB hugepages (x86-64 PUD level; usually reserved at boot).
    Size1G,
}

impl PageSize {
    /// The page size in bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        1 << self.shift()
    }

    /// log2 of the page size (12, 21 or 30).
    #[inline]
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    /// Whether this is a hugepage size (anything but 4 KiB).
    #[inline]
    pub const fn is_huge(self) -> bool {
        !matches!(self, PageSize::Size4K)
    }

    /// The sysfs directory describing hugepages of this size, e.g.
    /// `/sys/kernel/mm/hugepages/hugepages-2048kB`; `None` for 4 KiB.
    pub fn sysfs_dir(self) -> Option<PathBuf> {
        self.is_huge().then(|| {
            PathBuf::from(format!(
                "/sys/kernel/mm/hugepages/hugepages-{}kB",
                self.bytes() >> 10
            ))
        })
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Size4K => "4 KiB",
            PageSize::Size2M => "2 MiB",
            PageSize::Size1G => "1 GiB",
        })
    }
}

/// The string given to [`PageSize::from_str`] is not a page size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown page size {0:?}: expected 4K, 2M or 1G (also 4KiB, 2MiB, 1GiB)")]
pub struct ParsePageSizeError(String);

impl FromStr for PageSize {
    type Err = ParsePageSizeError;

    /// Accepts `4K`, `2M`, `1G`, optionally followed by `B` or `iB`, with an optional space
    /// before the unit; case-insensitive (`2m`, `2 MiB`, `1gib`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != ' ')
            .collect::<String>()
            .to_ascii_uppercase();
        let unit = norm
            .strip_suffix("IB")
            .or_else(|| norm.strip_suffix('B'))
            .unwrap_or(&norm);
        match unit {
            "4K" => Ok(PageSize::Size4K),
            "2M" => Ok(PageSize::Size2M),
            "1G" => Ok(PageSize::Size1G),
            _ => Err(ParsePageSizeError(s.to_owned())),
        }
    }
}

/// What to do when hugepages of the requested size cannot be had.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum HugePagePolicy {
    /// Fail with [`Error::HugePagesUnavailable`]. Use it for no-IOMMU DMA, which needs
    /// hugepages (see [`Error::PagemapNeedsHugepages`]).
    Require,
    /// Fall back to 4 KiB pages, printing one warning per process to stderr.
    #[default]
    Prefer,
    /// Use 4 KiB pages only, whatever page size is requested (like DPDK's `--no-huge`).
    Never,
}

/// Where a mapping's pages live, which decides who else can map them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum MemBacking {
    /// Private anonymous memory: only this process (and the devices it maps it for) reach it.
    #[default]
    Anonymous,
    /// A memfd mapped shared: whoever is handed [`HugeMem::fd`] can map the same pages (a
    /// vhost-user backend, `SET_MEM_TABLE`). The file is sealed against shrinking and growing,
    /// so a peer holding the descriptor cannot pull pages from under this process.
    Memfd,
}

impl fmt::Display for MemBacking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemBacking::Anonymous => "anonymous",
            MemBacking::Memfd => "memfd",
        })
    }
}

/// Prints the fallback warning at most once per process.
static FALLBACK_WARNING: Once = Once::new();

/// An owned, page-aligned mapping, anonymous or a shared memfd ([`MemBacking`]): prefaulted,
/// zero-filled, locked where the limit allows, and hugepage-backed unless it
/// [fell back](HugeMem::fell_back).
///
/// It hands out raw pointers only, never `&[u8]` of the region: a device may write any byte of
/// it at any time, which a Rust reference must not observe.
///
/// The memory is also marked `MADV_DONTFORK`: a forked child does not inherit it, so a
/// copy-on-write fault in the parent can never move a page that a device is writing.
///
/// `HugeMem` is `Send + Sync` (checked at compile time below) without any `unsafe impl`: it
/// holds a `memmap2::MmapRaw`, which is, an optional `OwnedFd` and plain integers. That is sound because the type only
/// owns the mapping and gives out raw pointers; there are no references into it and no
/// interior state, so sharing or moving it between threads cannot race with itself. Whoever
/// dereferences the pointers answers for what happens through them.
pub struct HugeMem {
    map: MmapRaw,
    /// The memfd behind a [`MemBacking::Memfd`] mapping; dropped (closed) after the unmap.
    fd: Option<OwnedFd>,
    page: PageSize,
    requested: PageSize,
    fell_back: bool,
    locked: bool,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<HugeMem>();
};

impl HugeMem {
    /// Maps at least `len` bytes of anonymous memory with `page`-sized pages under `policy`.
    ///
    /// The length is rounded up to a multiple of the page size the mapping gets. The memory is
    /// zero-filled (the kernel's guarantee for anonymous maps), prefaulted (`MAP_POPULATE`) and
    /// `mlock`ed; a failed `mlock` (4 KiB pages beyond `RLIMIT_MEMLOCK`) is not an error, see
    /// [`is_locked`](Self::is_locked).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLength`] for `len == 0` or an overflowing length,
    /// [`Error::HugePagesUnavailable`] when hugepages are missing and `policy` is
    /// [`HugePagePolicy::Require`], [`Error::Mmap`] when the kernel refuses the mapping itself.
    pub fn allocate(len: usize, page: PageSize, policy: HugePagePolicy) -> Result<HugeMem, Error> {
        Self::allocate_with(len, page, policy, MemBacking::Anonymous)
    }

    /// [`allocate`](Self::allocate) with the pages in `backing`: with [`MemBacking::Memfd`]
    /// the region is a whole memfd (from offset 0), mapped shared, that another process can
    /// map through [`fd`](Self::fd). Hugepages and the fallback to 4 KiB pages work as for
    /// anonymous memory.
    ///
    /// # Errors
    ///
    /// As [`allocate`](Self::allocate), plus [`Error::Memfd`] when the memfd cannot be made.
    pub fn allocate_with(
        len: usize,
        page: PageSize,
        policy: HugePagePolicy,
        backing: MemBacking,
    ) -> Result<HugeMem, Error> {
        if policy == HugePagePolicy::Never || !page.is_huge() {
            return Self::map(len, PageSize::Size4K, page, false, backing);
        }
        match Self::map(len, page, page, false, backing) {
            Ok(mem) => Ok(mem),
            // A hugetlb memfd reports a size the kernel has no pool for at memfd_create, and a
            // short pool at mmap (where the pages are reserved), as an anonymous map does.
            Err(
                Error::Mmap {
                    page,
                    bytes,
                    source,
                }
                | Error::Memfd {
                    step: MEMFD_CREATE,
                    page,
                    bytes,
                    source,
                },
            ) if hugepages_missing(&source) => {
                let sysfs = page.sysfs_dir().unwrap_or_default();
                let needed_pages = (bytes / page.bytes()) as u64;
                let free_pages = available_hugepages(page).unwrap_or(0);
                if policy == HugePagePolicy::Require {
                    return Err(Error::HugePagesUnavailable {
                        page,
                        bytes,
                        needed_pages,
                        free_pages,
                        sysfs: sysfs.display().to_string(),
                        source,
                    });
                }
                FALLBACK_WARNING.call_once(|| {
                    eprintln!("{}", fallback_warning(page, needed_pages, free_pages));
                });
                Self::map(len, PageSize::Size4K, page, true, backing)
            }
            Err(e) => Err(e),
        }
    }

    fn map(
        len: usize,
        page: PageSize,
        requested: PageSize,
        fell_back: bool,
        backing: MemBacking,
    ) -> Result<HugeMem, Error> {
        let bytes = match len.checked_next_multiple_of(page.bytes()) {
            Some(b) if len != 0 && b <= isize::MAX as usize => b,
            _ => return Err(Error::InvalidLength { bytes: len, page }),
        };
        let mut opts = MmapOptions::new();
        opts.len(bytes).populate();
        let mmap_err = |source| Error::Mmap {
            page,
            bytes,
            source,
        };
        let (map, fd) = match backing {
            MemBacking::Anonymous => {
                if page.is_huge() {
                    // MAP_HUGETLB | (shift << MAP_HUGE_SHIFT); without the size bits the kernel
                    // would use the default hugepage size, which need not be the one asked for.
                    opts.huge(Some(page.shift() as u8));
                }
                (MmapRaw::from(opts.map_anon().map_err(mmap_err)?), None)
            }
            MemBacking::Memfd => {
                let fd = memfd(bytes, page).map_err(|(step, source)| Error::Memfd {
                    step,
                    page,
                    bytes,
                    source,
                })?;
                // MAP_SHARED: the peer's mapping and ours are the same pages.
                (opts.map_raw(&fd).map_err(mmap_err)?, Some(fd))
            }
        };
        // Best effort: without it a child process only shares the pages copy-on-write, and the
        // parent's next write would move a page that a device may be writing.
        let _ = map.advise(Advice::DontFork);
        // Hugetlb pages are never swapped, so a failed lock (RLIMIT_MEMLOCK) costs nothing
        // there; 4 KiB pages can then be swapped out, which `is_locked` reports.
        let locked = map.lock().is_ok();
        Ok(HugeMem {
            map,
            fd,
            page,
            requested,
            fell_back,
            locked,
        })
    }

    /// Start of the region, aligned to [`page_size`](Self::page_size).
    #[inline]
    pub fn as_ptr(&self) -> NonNull<u8> {
        // `allocate` never maps zero bytes and mmap never places a mapping at address 0
        // (`vm.mmap_min_addr`), so the pointer is non-null.
        NonNull::new(self.map.as_mut_ptr()).expect("a non-empty mmap is never at address 0")
    }

    /// Length in bytes: the requested length rounded up to the page size.
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false`: a region has at least one page. Present for API symmetry with `len`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The page size the region got (4 KiB after a fallback or under
    /// [`HugePagePolicy::Never`]).
    #[inline]
    pub fn page_size(&self) -> PageSize {
        self.page
    }

    /// The page size passed to [`allocate`](Self::allocate).
    #[inline]
    pub fn requested_page_size(&self) -> PageSize {
        self.requested
    }

    /// Whether hugepages were asked for under [`HugePagePolicy::Prefer`] but were not
    /// available, so the region uses 4 KiB pages. (`Never` is a choice, not a fallback: it
    /// leaves this `false`.)
    #[inline]
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }

    /// Whether `mlock` succeeded. When `false` (4 KiB pages over `RLIMIT_MEMLOCK`, or no
    /// `CAP_IPC_LOCK`), 4 KiB pages may be swapped out; hugetlb pages never are.
    ///
    /// For hugepages the kernel accepts the `mlock` but does not mark the mapping locked
    /// (`/proc/self/smaps` shows no `lo` flag and `Locked: 0 kB`): hugetlb pages are not on the
    /// LRU lists, so there is nothing to lock them against.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Where the pages live.
    #[inline]
    pub fn backing(&self) -> MemBacking {
        if self.fd.is_some() {
            MemBacking::Memfd
        } else {
            MemBacking::Anonymous
        }
    }

    /// The memfd holding the region ([`MemBacking::Memfd`] only): the region is the whole
    /// file, from offset 0, [`len`](Self::len) bytes. It stays open as long as `self`; a peer
    /// that needs it longer gets a duplicate (`SCM_RIGHTS` makes one).
    #[inline]
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Whether `ptr` points into the region.
    #[inline]
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.offset_of(ptr).is_some()
    }

    /// Byte offset of `ptr` from the start of the region, if it points into it.
    #[inline]
    pub fn offset_of(&self, ptr: *const u8) -> Option<usize> {
        let off = (ptr as usize).checked_sub(self.map.as_ptr() as usize)?;
        (off < self.len()).then_some(off)
    }
}

impl fmt::Debug for HugeMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HugeMem")
            .field("base", &self.map.as_ptr())
            .field("len", &self.len())
            .field("backing", &self.backing())
            .field("page_size", &self.page)
            .field("requested_page_size", &self.requested)
            .field("fell_back", &self.fell_back)
            .field("locked", &self.locked)
            .finish()
    }
}

/// [`Error::Memfd`]'s `step` when `memfd_create` itself failed.
const MEMFD_CREATE: &str = "memfd_create";

/// A new memfd of `bytes` bytes on `page`-sized pages, sealed against resizing, or the step
/// that failed with its OS error.
///
/// Seals (`memfd_create(2)`, `fcntl(2)` "File Sealing"): the peer that maps the region receives
/// a descriptor of the same open file, and a shrink through it would turn this process's
/// accesses to the cut pages into `SIGBUS`; `F_SEAL_SEAL` keeps the seals from being lifted.
#[allow(unsafe_code)]
fn memfd(bytes: usize, page: PageSize) -> Result<OwnedFd, (&'static str, io::Error)> {
    let size_flags = match page {
        PageSize::Size4K => 0,
        PageSize::Size2M => libc::MFD_HUGETLB | libc::MFD_HUGE_2MB,
        PageSize::Size1G => libc::MFD_HUGETLB | libc::MFD_HUGE_1GB,
    };
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | size_flags;
    // SAFETY: the name is a NUL-terminated literal that outlives the call, and the flags are
    // plain bits; the call creates a new descriptor and touches no memory of ours.
    let raw = unsafe { libc::memfd_create(c"sluice-dma".as_ptr(), flags) };
    if raw < 0 {
        return Err((MEMFD_CREATE, io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a descriptor memfd_create just returned, owned by nothing else.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    // The size is a multiple of the page size (hugetlbfs refuses anything else).
    file.set_len(bytes as u64).map_err(|e| ("ftruncate", e))?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl(F_ADD_SEALS) on a descriptor we own, with an integer argument; it reads
    // and writes no memory of ours.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(("fcntl(F_ADD_SEALS)", io::Error::last_os_error()));
    }
    Ok(OwnedFd::from(file))
}

/// Whether an `mmap(MAP_HUGETLB)` error means "no hugepages of that size": `ENOMEM` when the
/// pool is short, `EINVAL` when the kernel has no pool of that size at all.
fn hugepages_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOMEM) | Some(libc::EINVAL))
}

/// Free hugepages of `page` size not already promised to another mapping
/// (`free_hugepages - resv_hugepages`), or `None` if sysfs has no such size.
pub(crate) fn available_hugepages(page: PageSize) -> Option<u64> {
    let dir = page.sysfs_dir()?;
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let free = read("free_hugepages")?;
    let resv = read("resv_hugepages").unwrap_or(0);
    Some(free.saturating_sub(resv))
}

/// The one-line warning printed when [`HugePagePolicy::Prefer`] falls back to 4 KiB pages.
fn fallback_warning(page: PageSize, needed: u64, have: u64) -> String {
    let dir = page.sysfs_dir().unwrap_or_default();
    let dir = dir.display();
    format!(
        "sluice: warning: no free {page} hugepages (need {needed}, have {have} in \
         {dir}/free_hugepages); using 4 KiB pages, which no-IOMMU DMA cannot use: \
         write a count to {dir}/nr_hugepages to reserve some"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_numbers() {
        assert_eq!(PageSize::Size4K.bytes(), 4096);
        assert_eq!(PageSize::Size2M.bytes(), 2 << 20);
        assert_eq!(PageSize::Size1G.bytes(), 1 << 30);
        assert_eq!(PageSize::Size2M.shift(), 21);
        assert!(!PageSize::Size4K.is_huge());
        assert!(PageSize::Size1G.is_huge());
        assert_eq!(PageSize::Size4K.sysfs_dir(), None);
        assert_eq!(
            PageSize::Size1G.sysfs_dir().unwrap(),
            PathBuf::from("/sys/kernel/mm/hugepages/hugepages-1048576kB")
        );
    }

    #[test]
    fn page_size_display_roundtrips() {
        assert_eq!(PageSize::Size4K.to_string(), "4 KiB");
        assert_eq!(PageSize::Size2M.to_string(), "2 MiB");
        assert_eq!(PageSize::Size1G.to_string(), "1 GiB");
        for p in [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G] {
            assert_eq!(p.to_string().parse::<PageSize>(), Ok(p));
        }
    }

    #[test]
    fn page_size_parses() {
        for (s, p) in [
            ("4K", PageSize::Size4K),
            ("4k", PageSize::Size4K),
            ("4KiB", PageSize::Size4K),
            ("4kib", PageSize::Size4K),
            ("4KB", PageSize::Size4K),
            ("2M", PageSize::Size2M),
            ("2m", PageSize::Size2M),
            (" 2MiB ", PageSize::Size2M),
            ("2 MiB", PageSize::Size2M),
            ("1G", PageSize::Size1G),
            ("1GiB", PageSize::Size1G),
            ("1gb", PageSize::Size1G),
        ] {
            assert_eq!(s.parse::<PageSize>(), Ok(p), "{s:?}");
        }
        for s in [
            "",
            "4",
            "2",
            "8K",
            "4M",
            "2G",
            "2MiBB",
            "K",
            "2 M i B x",
            "4096",
        ] {
            let e = s.parse::<PageSize>().unwrap_err();
            assert!(
                e.to_string().contains("expected 4K, 2M or 1G"),
                "{s:?}: {e}"
            );
        }
    }

    #[test]
    fn fallback_warning_names_the_fix() {
        let w = fallback_warning(PageSize::Size2M, 3, 0);
        assert!(
            w.starts_with("sluice: warning: no free 2 MiB hugepages (need 3, have 0"),
            "{w}"
        );
        assert!(
            w.contains("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"),
            "{w}"
        );
        assert!(
            w.contains("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
            "{w}"
        );
        assert!(w.contains("using 4 KiB pages"), "{w}");
        assert!(!w.contains('\n'));
    }

    #[test]
    fn zero_and_overflowing_lengths_are_rejected() {
        for (len, page) in [
            (0, PageSize::Size4K),
            (usize::MAX, PageSize::Size4K),
            (usize::MAX - 4096, PageSize::Size2M),
        ] {
            match HugeMem::allocate(len, page, HugePagePolicy::Require) {
                Err(Error::InvalidLength { bytes, .. }) => assert_eq!(bytes, len),
                other => panic!("{len}: {other:?}"),
            }
        }
    }

    #[test]
    fn mmap_error_classification() {
        assert!(hugepages_missing(&io::Error::from_raw_os_error(
            libc::ENOMEM
        )));
        assert!(hugepages_missing(&io::Error::from_raw_os_error(
            libc::EINVAL
        )));
        assert!(!hugepages_missing(&io::Error::from_raw_os_error(
            libc::EACCES
        )));
        assert!(!hugepages_missing(&io::Error::other("x")));
    }
}
