//! [`UringQueue`]: a block queue over a file or kernel block device through io_uring, with
//! `O_DIRECT` so that data moves by DMA straight to and from the mempool buffers (the kernel's
//! own path, for comparison with the NVMe driver and for machines without a device).
//!
//! One ring per queue, owned by one lcore. Submissions are pushed to the ring's SQ and handed
//! to the kernel with one `io_uring_enter` per batch ([`flush_submissions`]); completions are
//! reaped from the CQ without a system call.
//!
//! [`flush_submissions`]: BlockQueue::flush_submissions

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};

use sluice_mempool::Mempool;

use super::{BackendError, BackendStep};
use super::{
    BlockCompletion, BlockError, BlockInfo, BlockOp, BlockQueue, BlockRequest, BlockStats,
    Rejected, validate,
};
use crate::error::Error;

/// How to open a [`UringQueue`].
#[derive(Clone, Debug)]
pub struct UringConfig {
    /// Requests outstanding at most (rounded up to a power of two for the ring).
    pub queue_depth: u32,
    /// Open with `O_DIRECT` (bypass the page cache; buffers, offsets and sizes must be
    /// aligned to the logical block size).
    pub direct: bool,
    /// Logical block size for files (block devices report their own).
    pub block_size: u32,
    /// For a regular file: its size in bytes, if it should be created or extended to it.
    pub file_size: Option<u64>,
}

impl Default for UringConfig {
    fn default() -> Self {
        UringConfig {
            queue_depth: 128,
            direct: true,
            block_size: 512,
            file_size: None,
        }
    }
}

/// A block queue over io_uring.
pub struct UringQueue {
    // Declared first: dropped (unregistering the fixed buffers) before `fixed` lets the pool go.
    ring: IoUring,
    file: File,
    info: BlockInfo,
    slots: Vec<Option<BlockRequest>>,
    free: Vec<u32>,
    unsubmitted: u32,
    stats: BlockStats,
    /// The registered pool and its address range (fixed buffer index 0).
    fixed: Option<(Mempool, usize, usize)>,
}

const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
const BLKSSZGET: libc::c_ulong = 0x1268;
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

impl UringQueue {
    /// Opens `path` (a regular file or a block device) read-write.
    ///
    /// # Errors
    /// [`BackendError::Io`] naming the step and the path (open, size, ring setup).
    pub fn open(path: &Path, cfg: &UringConfig) -> Result<Self, Error> {
        let io_err = |step| {
            move |source: std::io::Error| BackendError::Io {
                step,
                path: path.to_path_buf(),
                source,
            }
        };
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if cfg.file_size.is_some() {
            opts.create(true);
        }
        if cfg.direct {
            opts.custom_flags(libc::O_DIRECT);
        }
        let file = opts.open(path).map_err(io_err(BackendStep::Open))?;
        let meta = file.metadata().map_err(io_err(BackendStep::Stat))?;
        let (bytes, block_size) = if meta.file_type().is_block_device() {
            let mut size = 0u64;
            let mut bs: libc::c_int = 0;
            // SAFETY: BLKGETSIZE64 writes one u64 and BLKSSZGET one int through the pointers,
            // which point at live locals of those types.
            let ok = unsafe {
                libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) == 0
                    && libc::ioctl(file.as_raw_fd(), BLKSSZGET, &mut bs as *mut libc::c_int) == 0
            };
            if !ok {
                return Err(io_err(BackendStep::QuerySize)(std::io::Error::last_os_error()).into());
            }
            (size, bs.max(512) as u32)
        } else {
            if let Some(len) = cfg.file_size.filter(|&l| l > meta.len()) {
                file.set_len(len).map_err(io_err(BackendStep::Extend))?;
            }
            (
                file.metadata().map_err(io_err(BackendStep::Stat))?.len(),
                cfg.block_size,
            )
        };
        let depth = cfg.queue_depth.clamp(1, 4096);
        let ring =
            IoUring::new(depth.next_power_of_two()).map_err(io_err(BackendStep::UringSetup))?;
        Ok(UringQueue {
            ring,
            file,
            info: BlockInfo {
                name: path.display().to_string(),
                block_size,
                blocks: bytes / u64::from(block_size),
                max_transfer: 1 << 20,
                queue_depth: depth as usize,
            },
            slots: (0..depth).map(|_| None).collect(),
            free: (0..depth).rev().collect(),
            unsubmitted: 0,
            stats: BlockStats::default(),
            fixed: None,
        })
    }

    /// Registers `pool`'s memory with the ring as one fixed buffer (`IORING_REGISTER_BUFFERS`):
    /// reads and writes into its objects then skip the per-request page pinning. The queue
    /// keeps the pool alive while registered. Call it before any request is outstanding.
    ///
    /// # Errors
    /// [`BackendError::Io`] when the kernel refuses (`RLIMIT_MEMLOCK`, a region over 1 GiB) or
    /// requests are outstanding; the queue then keeps working without fixed buffers.
    pub fn register_pool(&mut self, pool: &Mempool) -> Result<(), Error> {
        let err = |source| BackendError::Io {
            step: BackendStep::RegisterBuffers,
            path: self.info.name.clone().into(),
            source,
        };
        if self.outstanding() > 0 {
            return Err(err(std::io::Error::from_raw_os_error(libc::EBUSY)).into());
        }
        let region = pool.region();
        let start = region.as_ptr().as_ptr() as usize;
        let iov = libc::iovec {
            iov_base: region.as_ptr().as_ptr().cast(),
            iov_len: region.len(),
        };
        let sub = self.ring.submitter();
        if self.fixed.take().is_some() {
            sub.unregister_buffers().map_err(err)?;
        }
        // SAFETY: the iovec covers the pool's whole DMA region, which stays mapped while the
        // pool lives; the queue keeps a handle to the pool in `fixed` and drops it only after
        // the ring (which unregisters the buffer) is gone or the buffer is unregistered.
        unsafe { sub.register_buffers(&[iov]) }.map_err(err)?;
        self.fixed = Some((pool.clone(), start, start + region.len()));
        Ok(())
    }

    /// Whether the request's buffer lies in the registered pool.
    fn fixed_index(&self, ptr: *const u8, len: u64) -> Option<u16> {
        let (_, start, end) = self.fixed.as_ref()?;
        let p = ptr as usize;
        (p >= *start && p.checked_add(len as usize).is_some_and(|e| e <= *end)).then_some(0)
    }

    fn entry(&self, req: &BlockRequest, slot: u32) -> io_uring::squeue::Entry {
        let fd = types::Fd(self.file.as_raw_fd());
        let bs = u64::from(self.info.block_size);
        let off = req.lba * bs;
        let len = u64::from(req.blocks) * bs;
        let ptr = req
            .buf
            .as_ref()
            .map_or(std::ptr::null_mut(), |b| b.as_ptr());
        let fixed = self.fixed_index(ptr, len);
        let e = match (req.op, fixed) {
            (BlockOp::Read, Some(i)) => opcode::ReadFixed::new(fd, ptr, len as u32, i)
                .offset(off)
                .build(),
            (BlockOp::Write, Some(i)) => opcode::WriteFixed::new(fd, ptr, len as u32, i)
                .offset(off)
                .build(),
            (BlockOp::Read, None) => opcode::Read::new(fd, ptr, len as u32).offset(off).build(),
            (BlockOp::Write, None) => opcode::Write::new(fd, ptr, len as u32).offset(off).build(),
            (BlockOp::Flush, _) => opcode::Fsync::new(fd).build(),
            (BlockOp::WriteZeroes, _) => opcode::Fallocate::new(fd, len)
                .offset(off)
                .mode(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)
                .build(),
            (BlockOp::Deallocate, _) => opcode::Fallocate::new(fd, len)
                .offset(off)
                .mode(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
                .build(),
        };
        e.user_data(u64::from(slot))
    }
}

impl BlockQueue for UringQueue {
    fn info(&self) -> &BlockInfo {
        &self.info
    }

    fn submit(&mut self, req: BlockRequest) -> Result<(), Rejected> {
        if let Err(e) = validate(&req, &self.info) {
            return Err(Rejected::Invalid(req, e));
        }
        let Some(slot) = self.free.pop() else {
            return Err(Rejected::Full(req));
        };
        let entry = self.entry(&req, slot);
        // SAFETY: the entry points at `req.buf`'s memory, which is kept (with the request) in
        // `slots[slot]` until its completion is reaped; `Drop` waits for every outstanding
        // completion before the buffers can go.
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            self.free.push(slot);
            return Err(Rejected::Full(req));
        }
        self.slots[slot as usize] = Some(req);
        self.unsubmitted += 1;
        self.stats.submitted += 1;
        Ok(())
    }

    fn flush_submissions(&mut self) -> Result<(), Error> {
        if self.unsubmitted == 0 {
            return Ok(());
        }
        self.ring.submit().map_err(|source| BackendError::Io {
            step: BackendStep::Submit,
            path: self.info.name.clone().into(),
            source,
        })?;
        self.unsubmitted = 0;
        self.stats.doorbells += 1;
        Ok(())
    }

    fn poll_completions<F: FnMut(BlockCompletion)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, Error> {
        self.flush_submissions()?;
        let mut n = 0;
        let bs = self.info.block_size;
        for cqe in self.ring.completion().take(max) {
            let slot = cqe.user_data() as usize;
            let Some(req) = self.slots.get_mut(slot).and_then(Option::take) else {
                self.stats.device_errors += 1;
                continue;
            };
            self.free.push(slot as u32);
            let res = cqe.result();
            let status = if res < 0 {
                Err(BlockError::Os(-res))
            } else if matches!(req.op, BlockOp::Read | BlockOp::Write)
                && res as usize != req.data_len(bs)
            {
                Err(BlockError::Os(libc::EIO))
            } else {
                Ok(())
            };
            self.stats.completed += 1;
            n += 1;
            f(BlockCompletion::of(req, status));
        }
        Ok(n)
    }

    fn outstanding(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn stats(&self) -> BlockStats {
        self.stats
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        // The kernel may still be writing into outstanding buffers: reap them first.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.outstanding() > 0 && Instant::now() < deadline {
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            let _ = self.poll_completions(usize::MAX, drop);
        }
        if self.outstanding() > 0 {
            eprintln!(
                "sluice-pmd: io_uring queue on {} dropped with {} requests outstanding; leaking \
                 their buffers",
                self.info.name,
                self.outstanding()
            );
            for r in self.slots.iter_mut().filter_map(Option::take) {
                std::mem::forget(r);
            }
        }
    }
}

impl std::fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringQueue")
            .field("info", &self.info)
            .field("outstanding", &self.outstanding())
            .field("stats", &self.stats)
            .field("fixed_buffers", &self.fixed.is_some())
            .finish()
    }
}
