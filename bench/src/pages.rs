//! The page size under both sides' pools, chosen once per run.
//!
//! DPDK keeps each mbuf's header inside its buffer, so on 4 KiB pages a burst of 32
//! buffers touches 32 pages and its figures carry TLB misses; sluice keeps headers in a
//! compact side array. Comparing on 4 KiB pages would flatter sluice, so when 2 MiB
//! hugepages are free both sides use them: sluice's pools directly, DPDK through a private
//! hugetlbfs mount (`--huge-dir`, removed at the end of the run). Otherwise both use 4 KiB
//! pages and the report says why.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_mempool::{HugePagePolicy, PageSize};

/// 2 MiB pages the run needs free: DPDK's `-m` (see [`Pages::eal_memory`]) plus one sluice
/// pool at a time (8191 × 2176 B ≈ 9 pages) with room to spare.
const HUGE_PAGES_NEEDED: u64 = 96;
const FREE_2M: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

/// Where both sides' pool memory comes from.
#[derive(Debug)]
pub enum Pages {
    /// 2 MiB hugepages; DPDK gets them through this private hugetlbfs mount.
    Huge(HugeMount),
    /// 4 KiB pages, and why not hugepages.
    Small(String),
}

impl Pages {
    /// Hugepages if enough are free and a private hugetlbfs can be mounted, else 4 KiB.
    pub fn choose() -> Self {
        let free: u64 = std::fs::read_to_string(FREE_2M)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if free < HUGE_PAGES_NEEDED {
            return Self::Small(format!(
                "{free} free 2 MiB hugepages, {HUGE_PAGES_NEEDED} needed \
                 (reserve with: echo 256 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)"
            ));
        }
        match HugeMount::new() {
            Ok(m) => Self::Huge(m),
            Err(why) => Self::Small(why),
        }
    }

    /// The page size sluice's pools ask for, and the policy (hugepages are required when
    /// chosen, so that a figure is never silently taken on the other page size).
    pub fn pool_pages(&self) -> (PageSize, HugePagePolicy) {
        match self {
            Self::Huge(_) => (PageSize::Size2M, HugePagePolicy::Require),
            Self::Small(_) => (PageSize::Size4K, HugePagePolicy::Never),
        }
    }

    /// DPDK EAL memory arguments for the same page size.
    pub fn eal_memory(&self) -> Vec<String> {
        match self {
            Self::Huge(m) => vec![
                "--huge-dir".into(),
                m.dir.display().to_string(),
                // Unlink the hugepage files at once: the pages go back when DPDK exits.
                "--huge-unlink".into(),
                "-m".into(),
                "128".into(),
            ],
            Self::Small(_) => vec!["--no-huge".into(), "-m".into(), "512".into()],
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Huge(_) => "pool memory: 2 MiB hugepages for both sluice and DPDK".into(),
            Self::Small(why) => {
                format!("pool memory: 4 KiB pages for both sluice and DPDK ({why})")
            }
        }
    }

    /// Short name for table headings.
    pub fn short(&self) -> &'static str {
        match self {
            Self::Huge(_) => "2 MiB pages",
            Self::Small(_) => "4 KiB pages",
        }
    }
}

/// A hugetlbfs mounted in a private temporary directory; unmounted and removed on drop.
#[derive(Debug)]
pub struct HugeMount {
    dir: PathBuf,
}

impl HugeMount {
    fn new() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("sluice-bench-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let status = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "none"])
            .arg(&dir)
            .output();
        match status {
            Ok(out) if out.status.success() => Ok(Self { dir }),
            Ok(out) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!(
                    "cannot mount hugetlbfs for DPDK (root needed): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("cannot run mount: {e}"))
            }
        }
    }

    /// The mount point.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for HugeMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).output();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
