//! A small service embedding the NVMe driver: it opens a controller through VFIO, creates an
//! I/O queue pair, moves file contents to or from the namespace in 128 KiB requests with up
//! to 16 in flight, and shuts the controller down. The QEMU end-to-end test uses it to show
//! that what Sluice writes reads back through the kernel's nvme driver, and the other way
//! round.
//!
//! ```text
//! nvme_service write 0000:00:03.0 BYTE_OFFSET FILE     # FILE -> namespace 1
//! nvme_service read  0000:00:03.0 BYTE_OFFSET LEN FILE # namespace 1 -> FILE
//! ```
//!
//! The call sequence an embedding service follows: [`VfioNvme::open`], then
//! [`Controller::create_io_qpair`](sluice_pmd::nvme::Controller::create_io_qpair) per
//! polling thread, buffers from a [`Mempool`] whose mapper is the VFIO container, then
//! `submit` / `flush_submissions` / `poll_completions` on the queue, and finally
//! `delete_io_qpair` and `shutdown`.

use std::process::ExitCode;
use std::sync::Arc;

use sluice_mempool::{HugePagePolicy, IovaMapper, Mempool, PoolConfig};
use sluice_pmd::MmioRegion;
use sluice_pmd::block::{BlockQueue, BlockRequest};
use sluice_pmd::nvme::{ControllerConfig, IoQpair, VfioNvme};
use sluice_pmd::pci::Sysfs;
use sluice_pmd::vfio::IommuMode;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CHUNK: usize = 128 << 10;
const DEPTH: usize = 16;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvme_service: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let usage = "usage: nvme_service write BDF BYTE_OFFSET FILE | read BDF BYTE_OFFSET LEN FILE";
    let (write, addr, offset) = match args {
        [op, addr, off, ..] if op == "write" || op == "read" => {
            (op == "write", addr.parse()?, off.parse::<u64>()?)
        }
        _ => return Err(usage.into()),
    };
    // A device whose VFIO group is noiommu-N (VFIO's no-IOMMU mode) sees physical addresses:
    // the container then maps with IOVA = PA, on hugepages.
    let noiommu = Sysfs::system()
        .iommu_group(addr)?
        .is_some_and(|g| g.noiommu);
    let (mode, huge_pages) = if noiommu {
        (IommuMode::NoIommu, HugePagePolicy::Require)
    } else {
        (IommuMode::Type1v2, HugePagePolicy::Prefer)
    };
    let cfg = ControllerConfig {
        huge_pages,
        ..ControllerConfig::default()
    };
    let mut dev = VfioNvme::open(addr, mode, cfg)?;
    let ns = *dev.ctrl.namespaces().first().ok_or("no active namespace")?;
    let bs = u64::from(ns.block_size);
    if !offset.is_multiple_of(bs) {
        return Err(format!("offset {offset} is not a multiple of the block size {bs}").into());
    }
    let mut q = dev.ctrl.create_io_qpair(ns.nsid)?;
    let mut cfg = PoolConfig::new("nvme-service", DEPTH as u32, CHUNK);
    cfg.obj_align = 4096;
    cfg.huge_pages = huge_pages;
    let mapper: Arc<dyn IovaMapper> = dev.container().clone();
    let pool = Mempool::new(&cfg, mapper)?;
    let result = if write {
        let data = std::fs::read(args.get(3).ok_or(usage)?)?;
        transfer(
            &mut q,
            &pool,
            offset / bs,
            bs as usize,
            Some(&data),
            data.len(),
        )
        .map(|_| data.len())
    } else {
        let len: usize = args.get(3).ok_or(usage)?.parse()?;
        transfer(&mut q, &pool, offset / bs, bs as usize, None, len)
            .and_then(|data| Ok(std::fs::write(args.get(4).ok_or(usage)?, data).map(|()| len)?))
    };
    // Queue and controller go down whether or not the transfer worked.
    dev.ctrl.delete_io_qpair(q)?;
    dev.shutdown()?;
    let moved = result?;
    println!(
        "nvme_service: {} {moved} bytes at byte {offset} of {addr} namespace {}",
        if write { "wrote" } else { "read" },
        ns.nsid
    );
    Ok(())
}

/// Moves `len` bytes (whole blocks) at `lba`: from `src` when given, else into the result.
fn transfer(
    q: &mut IoQpair<MmioRegion>,
    pool: &Mempool,
    lba: u64,
    bs: usize,
    src: Option<&[u8]>,
    len: usize,
) -> Result<Vec<u8>> {
    if !len.is_multiple_of(bs) {
        return Err(format!("length {len} is not a multiple of the block size {bs}").into());
    }
    let mut out = vec![0u8; if src.is_some() { 0 } else { len }];
    let chunks = len.div_ceil(CHUNK);
    let (mut next, mut done) = (0usize, 0usize);
    let mut last_progress = std::time::Instant::now();
    while done < chunks {
        if last_progress.elapsed() > std::time::Duration::from_secs(10) {
            return Err(format!("no completion for 10 s ({} outstanding)", q.outstanding()).into());
        }
        while next < chunks && q.outstanding() < DEPTH {
            let Some(mut buf) = pool.get() else { break };
            let at = next * CHUNK;
            let n = CHUNK.min(len - at);
            let blocks = (n / bs) as u32;
            let req = match src {
                Some(data) => {
                    buf.as_mut_slice()[..n].copy_from_slice(&data[at..at + n]);
                    BlockRequest::write(lba + (at / bs) as u64, blocks, buf, next as u64)
                }
                None => BlockRequest::read(lba + (at / bs) as u64, blocks, buf, next as u64),
            };
            q.submit(req)
                .map_err(|r| format!("request refused: {r:?}"))?;
            next += 1;
        }
        q.flush_submissions()?;
        let mut failed = None;
        let reaped = q.poll_completions(DEPTH, |c| {
            done += 1;
            if let Err(e) = c.status {
                failed = Some(format!("request {} failed: {e}", c.tag));
            } else if let (None, Some(buf)) = (src, c.buf.as_ref()) {
                let at = c.tag as usize * CHUNK;
                let n = CHUNK.min(len - at);
                out[at..at + n].copy_from_slice(&buf.as_slice()[..n]);
            }
        })?;
        if reaped > 0 {
            last_progress = std::time::Instant::now();
        }
        if let Some(f) = failed {
            return Err(f.into());
        }
    }
    Ok(out)
}
