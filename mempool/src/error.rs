//! The crate's error type.

use std::io;

use crate::mem::PageSize;

/// Everything that can go wrong in `sluice-mempool`.
///
/// Each variant carries the values needed to act on it (sizes, addresses, the sysfs file to
/// look at) and, where the OS refused, the `io::Error` as its [`source`](std::error::Error::source).
/// Virtual addresses (`va`) are plain integers here only so that the error stays `Send + Sync`;
/// they are printed as hex.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A zero length was asked for, or rounding it up to the page size overflowed.
    ///
    /// Ask for at least one byte and at most `isize::MAX` rounded down to the page size.
    #[error(
        "cannot map {bytes} bytes of {page} pages: length must be non-zero and fit after rounding up to the page size"
    )]
    InvalidLength {
        /// The length asked for.
        bytes: usize,
        /// The page size it was to be rounded up to.
        page: PageSize,
    },

    /// Not enough hugepages of the requested size are free and the policy was
    /// [`HugePagePolicy::Require`](crate::HugePagePolicy::Require).
    ///
    /// Reserve more (write a count to `nr_hugepages` in the `sysfs` directory, or boot with
    /// `hugepagesz=… hugepages=…`), ask for less, or use
    /// [`HugePagePolicy::Prefer`](crate::HugePagePolicy::Prefer) to fall back to 4 KiB pages.
    #[error(
        "no free {page} hugepages for {bytes} bytes: need {needed_pages}, have {free_pages} \
         (free_hugepages - resv_hugepages in {sysfs}); reserve more with \
         `echo N > {sysfs}/nr_hugepages`"
    )]
    HugePagesUnavailable {
        /// The hugepage size asked for.
        page: PageSize,
        /// The length asked for, rounded up to `page`.
        bytes: usize,
        /// How many pages of that size the mapping needs.
        needed_pages: u64,
        /// How many were free and unreserved when the mapping failed (0 if sysfs has no such
        /// size).
        free_pages: u64,
        /// The sysfs directory for that size, e.g. `/sys/kernel/mm/hugepages/hugepages-2048kB`.
        sysfs: String,
        /// What `mmap` said (usually `ENOMEM`; `EINVAL` when the kernel has no such size).
        #[source]
        source: io::Error,
    },

    /// `mmap` failed for a reason other than missing hugepages.
    ///
    /// Usually the address space or memory overcommit limit; the source says which.
    #[error("mmap of {bytes} bytes with {page} pages failed")]
    Mmap {
        /// The page size of the failed mapping.
        page: PageSize,
        /// Its length in bytes.
        bytes: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A memfd for shareable memory ([`MemBacking::Memfd`](crate::MemBacking::Memfd)) could not
    /// be made: `step` is the call that failed (`memfd_create`, `ftruncate`,
    /// `fcntl(F_ADD_SEALS)`).
    ///
    /// `memfd_create` needs Linux 3.17, hugetlb memfds and their seals 4.16; `ENFILE`/`EMFILE`
    /// mean the descriptor limits. Missing hugepages are not this error: they fall back or give
    /// [`Error::HugePagesUnavailable`] as for anonymous memory.
    #[error("{step} for a shared memory file of {bytes} bytes with {page} pages failed")]
    Memfd {
        /// The call that failed.
        step: &'static str,
        /// The page size asked of the file.
        page: PageSize,
        /// Its length in bytes.
        bytes: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// `/proc/self/pagemap` could not be opened (no procfs, or a kernel that answers `EPERM` as
    /// 4.0 and 4.1 did).
    ///
    /// Physical addresses are unavailable: use an IOMMU (VFIO type1) instead of no-IOMMU mode.
    #[error("cannot open /proc/self/pagemap to translate virtual to physical addresses")]
    PagemapOpen {
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Reading the pagemap entry of one virtual page failed.
    ///
    /// Not expected on a live mapping; report it together with the address.
    #[error("cannot read the /proc/self/pagemap entry for virtual address {va:#x}")]
    PagemapRead {
        /// The virtual address looked up.
        va: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The page is present but its page frame number read as 0: the process lacks
    /// `CAP_SYS_ADMIN`.
    ///
    /// Since Linux 4.2 the kernel hides PFNs from openers without `CAP_SYS_ADMIN` in the initial
    /// user namespace, so root inside a container is not enough. Run with that capability, or
    /// use an IOMMU (VFIO type1) and the identity mapper instead of no-IOMMU mode.
    #[error(
        "/proc/self/pagemap shows virtual address {va:#x} present but with PFN 0: reading \
         physical addresses needs CAP_SYS_ADMIN in the initial user namespace (Linux >= 4.2)"
    )]
    PagemapNoPfn {
        /// The virtual address looked up.
        va: usize,
    },

    /// The page is not resident, so it has no physical address.
    ///
    /// Memory from [`HugeMem`](crate::HugeMem) is prefaulted and locked, so this points at a
    /// pointer outside such a region, or at a hugetlb fault that failed silently at `mmap` time
    /// (for example a hugetlb cgroup limit).
    #[error("virtual address {va:#x} is not present in memory (not faulted in or swapped out)")]
    PageNotPresent {
        /// The virtual address looked up.
        va: usize,
    },

    /// No-IOMMU DMA was asked for on memory that is not hugepage-backed.
    ///
    /// `mlock` keeps 4 KiB pages in RAM but does not stop the kernel from migrating them
    /// (compaction, NUMA balancing, KSM), which would change a page's physical address under a
    /// device. Allocate with 2 MiB or 1 GiB pages and
    /// [`HugePagePolicy::Require`](crate::HugePagePolicy::Require).
    #[error(
        "physical addresses of {page} pages are not stable (mlock does not stop migration): \
         no-IOMMU DMA needs hugepage-backed memory"
    )]
    PagemapNeedsHugepages {
        /// The page size the region actually has.
        page: PageSize,
    },

    /// An IOMMU mapper (e.g. a VFIO type1 container) refused to map a region.
    ///
    /// The source carries the errno of the failing call; see the mapper's documentation.
    #[error("the {mapper} IOVA mapper failed")]
    Mapper {
        /// [`IovaMapper::name`](crate::IovaMapper::name) of the mapper.
        mapper: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A pool was asked for with a layout it cannot have (zero objects, an object size or
    /// alignment it cannot honour, a cache over the maximum).
    ///
    /// Fix the pool's configuration as the message says.
    #[error("pool '{pool}': {why}")]
    PoolConfig {
        /// The pool's name.
        pool: String,
        /// What is wrong, with the value.
        why: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_carry_values() {
        let e = Error::HugePagesUnavailable {
            page: PageSize::Size2M,
            bytes: 8 << 20,
            needed_pages: 4,
            free_pages: 1,
            sysfs: "/sys/kernel/mm/hugepages/hugepages-2048kB".into(),
            source: io::Error::from_raw_os_error(libc::ENOMEM),
        };
        let s = e.to_string();
        assert!(s.contains("2 MiB"), "{s}");
        assert!(s.contains("need 4, have 1"), "{s}");
        assert!(s.contains("8388608 bytes"), "{s}");
        assert!(
            s.contains("echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
            "{s}"
        );
        let src = e.source().expect("has a source");
        let io = src.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.raw_os_error(), Some(libc::ENOMEM));

        let e = Error::PagemapNoPfn {
            va: 0x7f00_0020_0000,
        };
        let s = e.to_string();
        assert!(s.contains("0x7f0000200000"), "{s}");
        assert!(s.contains("CAP_SYS_ADMIN"), "{s}");
        assert!(e.source().is_none());

        let e = Error::PageNotPresent { va: 0x1000 };
        assert!(e.to_string().contains("0x1000"));

        let e = Error::PagemapNeedsHugepages {
            page: PageSize::Size4K,
        };
        assert!(e.to_string().contains("4 KiB"));
    }

    #[test]
    fn os_errors_are_sources() {
        let e = Error::PagemapRead {
            va: 0xabc000,
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        assert!(e.to_string().contains("0xabc000"));
        let io = e
            .source()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .expect("io source");
        assert_eq!(io.raw_os_error(), Some(libc::EIO));

        let e = Error::Mapper {
            mapper: "vfio-type1",
            source: io::Error::from_raw_os_error(libc::EFAULT),
        };
        assert_eq!(e.to_string(), "the vfio-type1 IOVA mapper failed");
        assert!(e.source().is_some());

        let e = Error::Mmap {
            page: PageSize::Size1G,
            bytes: 1 << 30,
            source: io::Error::from_raw_os_error(libc::EAGAIN),
        };
        assert_eq!(
            e.to_string(),
            "mmap of 1073741824 bytes with 1 GiB pages failed"
        );
        assert!(e.source().is_some());
    }

    #[test]
    fn memfd_error_names_the_step() {
        let e = Error::Memfd {
            step: "fcntl(F_ADD_SEALS)",
            page: PageSize::Size2M,
            bytes: 4 << 20,
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(
            e.to_string(),
            "fcntl(F_ADD_SEALS) for a shared memory file of 4194304 bytes with 2 MiB pages failed"
        );
        assert!(e.source().is_some());
    }

    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
