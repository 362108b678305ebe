//! [`Controller`]: bring-up (NVMe 1.4 §7.6.1), the admin queue, I/O queue pair creation
//! and deletion, and shutdown (NVMe 1.4 §7.6.2).
//!
//! This is the control path: it may allocate, sleep in bounded waits, and format errors.
//! The I/O path is [`IoQpair`], which owns its queue memory and doorbells.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_mempool::{DmaRegion, HugePagePolicy, IovaMapper, PageSize};

use super::cmd::Sqe;
use super::identify::{self, ControllerInfo, NamespaceInfo};
use super::io::IoQpair;
use super::queue::{DataRange, QueueLayout, QueuePair, ShadowDoorbells, SubmitError};
use super::regs::{self, Cap};
use crate::SharedMemory;
use crate::error::Error;
use crate::nvme::{DmaUse, NvmeError};
use crate::regs::Registers;

mod teardown;

use teardown::LiveQueue;

/// How to bring a controller up.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Admin queue entries (2..=4096).
    pub admin_entries: u16,
    /// Entries per I/O queue (capped at CAP.MQES + 1).
    pub io_entries: u16,
    /// I/O queue pairs to ask for (one per polling lcore).
    pub io_qpairs: u16,
    /// Use Doorbell Buffer Config (shadow doorbells) when the controller offers it.
    pub shadow_doorbells: bool,
    /// Per-command timeout on I/O queues (`None`: none).
    pub io_timeout: Option<Duration>,
    /// How long to wait for an admin command.
    pub admin_timeout: Duration,
    /// How long to wait for CSTS.SHST after CC.SHN.
    pub shutdown_timeout: Duration,
    /// Upper bound on the transfer size per command, whatever MDTS allows (sets the PRP list
    /// memory reserved per command).
    pub max_transfer: usize,
    /// Page size for queue memory.
    pub dma_page: PageSize,
    /// Hugepage policy for queue memory.
    pub huge_pages: HugePagePolicy,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            admin_entries: 32,
            io_entries: 256,
            io_qpairs: 1,
            shadow_doorbells: true,
            io_timeout: Some(Duration::from_secs(30)),
            admin_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            max_transfer: 512 << 10,
            dma_page: PageSize::Size2M,
            huge_pages: HugePagePolicy::Prefer,
        }
    }
}

/// The controller's memory page size: 4 KiB (CC.MPS = 0).
pub const PAGE_SIZE: usize = 4096;

/// An enabled NVMe controller. It can hand out I/O queue pairs only once bring-up
/// succeeded, because [`enable`](Self::enable) is the only constructor.
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn demo(bar0: sluice_pmd::MmioRegion, dma: Arc<dyn sluice_mempool::IovaMapper>) -> Result<(), sluice_pmd::Error> {
/// use sluice_pmd::nvme::{Controller, ControllerConfig};
/// let mut ctrl = Controller::enable(Arc::new(bar0), dma, ControllerConfig::default())?;
/// let qp = ctrl.create_io_qpair(1)?; // moved to the lcore that polls it
/// // ... I/O on qp ...
/// ctrl.delete_io_qpair(qp)?;
/// ctrl.shutdown()?;
/// # Ok(()) }
/// ```
pub struct Controller<R: Registers> {
    regs: Arc<R>,
    cap: Cap,
    cfg: ControllerConfig,
    mapper: Arc<dyn IovaMapper>,
    admin: QueuePair<R, ()>,
    /// Page 0: identify answers; pages 1 and 2: shadow doorbells and EventIdx.
    scratch: Arc<SharedMemory>,
    shadow: Option<ShadowDoorbells>,
    info: ControllerInfo,
    namespaces: Vec<NamespaceInfo>,
    max_transfer: usize,
    io_queues: u16,
    /// Live I/O queues: qid and the hold of what the device may touch, confirmed when the
    /// queue is deleted or the controller disabled, so a dropped queue pair's memory and
    /// buffers never go back while the device may use them.
    live: Vec<LiveQueue>,
    enabled: bool,
}

impl<R: Registers> Controller<R> {
    /// Resets and enables the controller behind `regs`, identifies it and its namespaces,
    /// negotiates the number of I/O queues and, when offered and asked for, configures shadow
    /// doorbells. Queue memory comes from `mapper` (the VFIO container, or the identity mapper
    /// for software controllers).
    ///
    /// # Errors
    /// [`NvmeError::Timeout`] naming CSTS and its value when RDY does not follow EN within
    /// CAP.TO; [`NvmeError::Fatal`] on CSTS.CFS; [`NvmeError::Command`] or
    /// [`NvmeError::AdminTimeout`] when an admin command fails; [`NvmeError::Gone`],
    /// [`NvmeError::NoNvmCommandSet`], [`NvmeError::NoQueueEntries`] or
    /// [`NvmeError::PageSize`] for a controller this driver
    /// cannot drive; [`NvmeError::Dma`] when queue memory cannot be had.
    pub fn enable(
        regs: Arc<R>,
        mapper: Arc<dyn IovaMapper>,
        cfg: ControllerConfig,
    ) -> Result<Self, Error> {
        let cap = Cap(regs.read64(regs::CAP)?);
        if cap.0 == u64::MAX {
            return Err(NvmeError::Gone { register: "CAP" }.into());
        }
        if !cap.supports_nvm() {
            return Err(NvmeError::NoNvmCommandSet { cap: cap.0 }.into());
        }
        if cap.max_queue_entries() < 2 {
            return Err(NvmeError::NoQueueEntries { cap: cap.0 }.into());
        }
        if cap.min_page_shift() > 12 {
            return Err(NvmeError::PageSize {
                min_bytes: 1 << cap.min_page_shift(),
            }
            .into());
        }
        // NVMe 1.4 §7.6.1 step 1: disable and wait for RDY = 0 (a previous user may have
        // left it running).
        let cc = regs.read32(regs::CC)?;
        let csts = regs.read32(regs::CSTS)?;
        if cc & regs::CC_EN != 0 || csts & regs::CSTS_RDY != 0 {
            regs.write32(regs::CC, cc & !regs::CC_EN)?;
        }
        wait_csts(
            &*regs,
            cap,
            ready_timeout(cap),
            "RDY = 0 after CC.EN = 0",
            |v| v & regs::CSTS_RDY == 0,
        )?;

        let admin_entries = cfg.admin_entries.clamp(2, 4096);
        let layout = QueueLayout {
            qid: 0,
            entries: admin_entries,
            page_size: PAGE_SIZE,
            max_transfer: PAGE_SIZE,
            doorbell_stride: cap.doorbell_stride(),
            timeout: Some(cfg.admin_timeout),
        };
        let admin_mem = Arc::new(alloc(&cfg, &mapper, layout.dma_len(), DmaUse::AdminQueue)?);
        let admin = QueuePair::new(regs.clone(), admin_mem, layout, None)?;
        let scratch = Arc::new(alloc(&cfg, &mapper, 3 * PAGE_SIZE, DmaUse::Scratch)?);
        if !scratch.is_contiguous(PAGE_SIZE, 2 * PAGE_SIZE) {
            return Err(NvmeError::ScratchNotContiguous.into());
        }

        // Steps 3-5: admin queues, configuration, enable, wait for RDY = 1.
        regs.write32(regs::AQA, regs::aqa(admin_entries, admin_entries))?;
        regs.write64(regs::ASQ, admin.sq_iova())?;
        regs.write64(regs::ACQ, admin.cq_iova())?;
        // The device has the admin queues from here: they stay until it is confirmed disabled.
        admin.hold().keep(admin.memory().clone());
        let cc = regs::cc_config(12);
        regs.write32(regs::CC, cc)?;
        regs.write32(regs::CC, cc | regs::CC_EN)?;
        let ready = wait_csts(
            &*regs,
            cap,
            ready_timeout(cap),
            "RDY = 1 after CC.EN = 1",
            |v| v & regs::CSTS_RDY != 0,
        );
        if let Err(e) = ready {
            // The device may still come up and use the admin queues: disable it before their
            // memory goes, or keep the memory if it does not confirm.
            let _ = regs.write32(regs::CC, cc);
            let stopped = wait_csts(
                &*regs,
                cap,
                ready_timeout(cap),
                "RDY = 0 after CC.EN = 0",
                |v| v & regs::CSTS_RDY == 0,
            );
            if stopped.is_ok() {
                admin.hold().confirm_stopped();
            }
            return Err(e);
        }
        // Likewise the scratch pages, which identify and shadow doorbells hand it.
        admin.hold().keep(scratch.clone());

        let mut ctrl = Controller {
            regs,
            cap,
            mapper,
            admin,
            scratch,
            shadow: None,
            info: ControllerInfo::parse(&[0; 4096]),
            namespaces: Vec::new(),
            max_transfer: PAGE_SIZE,
            io_queues: 0,
            live: Vec::new(),
            enabled: true,
            cfg,
        };
        ctrl.identify()?;
        ctrl.negotiate_queues()?;
        if ctrl.cfg.shadow_doorbells && ctrl.info.supports_doorbell_buffer() {
            ctrl.configure_shadow_doorbells()?;
        }
        Ok(ctrl)
    }

    fn identify(&mut self) -> Result<(), Error> {
        let page = self.identify_page(Sqe::identify(super::cmd::admin::CNS_CONTROLLER, 0))?;
        self.info = ControllerInfo::parse(&page);
        let min_page = 1usize << self.cap.min_page_shift();
        self.max_transfer = self
            .info
            .max_transfer(min_page, self.cfg.max_transfer.max(PAGE_SIZE));
        let list = self.identify_page(Sqe::identify(super::cmd::admin::CNS_ACTIVE_NS_LIST, 0))?;
        for nsid in identify::active_namespaces(&list) {
            let page = self.identify_page(Sqe::identify(super::cmd::admin::CNS_NAMESPACE, nsid))?;
            let ns = NamespaceInfo::parse(nsid, &page)?;
            if ns.blocks > 0 {
                self.namespaces.push(ns);
            }
        }
        Ok(())
    }

    fn identify_page(&mut self, sqe: Sqe) -> Result<Box<[u8; 4096]>, Error> {
        self.scratch.zero(0, PAGE_SIZE);
        let data = DataRange {
            iova: self.scratch.iova(0).as_u64(),
            len: PAGE_SIZE,
        };
        self.admin_command(sqe, Some(data), "identify")?;
        let mut page = Box::new([0u8; 4096]);
        self.scratch.read_bytes(0, &mut page[..]);
        Ok(page)
    }

    fn negotiate_queues(&mut self) -> Result<(), Error> {
        let want = self.cfg.io_qpairs.clamp(1, 0xfffe);
        let dw0 = self.admin_command(
            Sqe::set_num_queues(want, want),
            None,
            "set features (number of queues)",
        )?;
        let granted = ((dw0 & 0xffff) as u16)
            .min((dw0 >> 16) as u16)
            .saturating_add(1);
        self.io_queues = granted.min(want);
        Ok(())
    }

    fn configure_shadow_doorbells(&mut self) -> Result<(), Error> {
        self.scratch.zero(PAGE_SIZE, 2 * PAGE_SIZE);
        let shadow = self.scratch.iova(PAGE_SIZE).as_u64();
        let eventidx = self.scratch.iova(2 * PAGE_SIZE).as_u64();
        self.admin_command(
            Sqe::doorbell_buffer_config(shadow, eventidx),
            None,
            "doorbell buffer config",
        )?;
        self.shadow = Some(ShadowDoorbells {
            mem: self.scratch.clone(),
            page_size: PAGE_SIZE,
            base: PAGE_SIZE,
        });
        Ok(())
    }

    /// Runs one admin command to completion, waiting at most the admin timeout; returns DW0.
    ///
    /// # Errors
    /// [`NvmeError::Command`] with the decoded status, [`NvmeError::AdminTimeout`],
    /// [`NvmeError::Fatal`] if CSTS.CFS is seen while waiting.
    pub fn admin_command(
        &mut self,
        sqe: Sqe,
        data: Option<DataRange>,
        during: &'static str,
    ) -> Result<u32, Error> {
        let opcode = sqe.opcode();
        let cid = match self.admin.submit(sqe, data, ()) {
            Ok(cid) => cid,
            Err(SubmitError::Full(())) => return Err(NvmeError::QueueFull { qid: 0 }.into()),
            Err(SubmitError::Prp(e, ())) => {
                return Err(NvmeError::AdminBuffer(e).into());
            }
        };
        self.admin.ring_doorbell()?;
        let start = Instant::now();
        let deadline = start + self.cfg.admin_timeout;
        loop {
            let mut done = None;
            self.admin.poll(usize::MAX, |c| {
                if c.cid == cid {
                    done = Some((c.result, c.status));
                }
            })?;
            if let Some((result, status)) = done {
                return status.map(|()| result).map_err(|status| {
                    NvmeError::Command {
                        qid: 0,
                        cid,
                        opcode,
                        status,
                    }
                    .into()
                });
            }
            let csts = self.regs.read32(regs::CSTS)?;
            if csts & regs::CSTS_CFS != 0 {
                return Err(NvmeError::Fatal {
                    register: "CSTS",
                    value: csts,
                    during,
                }
                .into());
            }
            let now = Instant::now();
            if now >= deadline {
                self.admin
                    .expire(now + self.cfg.admin_timeout, |_, _, _| ());
                return Err(NvmeError::AdminTimeout {
                    opcode,
                    cid,
                    waited_ms: now.duration_since(start).as_millis() as u64,
                }
                .into());
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// Reads CSTS: `Ok` while the controller is ready and healthy; [`NvmeError::Fatal`] naming
    /// CSTS and its value on CFS or when the device reads as gone (all ones). The I/O path never
    /// reads registers; call this from a control thread now and then, or when I/O stalls.
    pub fn check_health(&self) -> Result<(), Error> {
        let csts = self.regs.read32(regs::CSTS)?;
        if csts == regs::CSTS_GONE || csts & regs::CSTS_CFS != 0 || csts & regs::CSTS_RDY == 0 {
            return Err(NvmeError::Fatal {
                register: "CSTS",
                value: csts,
                during: "a health check",
            }
            .into());
        }
        Ok(())
    }

    /// Identify Controller data.
    pub fn info(&self) -> &ControllerInfo {
        &self.info
    }

    /// Active namespaces with a non-zero size.
    pub fn namespaces(&self) -> &[NamespaceInfo] {
        &self.namespaces
    }

    /// CAP.
    pub fn cap(&self) -> Cap {
        self.cap
    }

    /// I/O queue pairs granted by Set Features (Number of Queues).
    pub fn io_queues_granted(&self) -> u16 {
        self.io_queues
    }

    /// Largest transfer per command (MDTS, capped by the configuration).
    pub fn max_transfer(&self) -> usize {
        self.max_transfer
    }

    /// Whether shadow doorbells are in use.
    pub fn shadow_doorbells(&self) -> bool {
        self.shadow.is_some()
    }

    /// Admin queue counters.
    pub fn admin_stats(&self) -> &super::IoQueueStats {
        self.admin.stats()
    }

    /// Creates an I/O completion queue and submission queue (interrupts off) for namespace
    /// `nsid`, on the lowest free queue id.
    ///
    /// # Errors
    /// [`NvmeError::NoQueue`] when every granted queue is in use, [`NvmeError::NoNamespace`],
    /// [`NvmeError::Dma`], admin command errors.
    pub fn create_io_qpair(&mut self, nsid: u32) -> Result<IoQpair<R>, Error> {
        let ns = *self
            .namespaces
            .iter()
            .find(|n| n.nsid == nsid)
            .ok_or_else(|| NvmeError::NoNamespace {
                nsid,
                active: self.namespaces.iter().map(|n| n.nsid).collect(),
            })?;
        let qid = (1..=self.io_queues)
            .find(|q| self.live.iter().all(|l| l.qid != *q))
            .ok_or(NvmeError::NoQueue {
                granted: self.io_queues,
            })?;
        // At least 2: `enable` refused MQES = 0.
        let mqes = self.cap.max_queue_entries().clamp(2, 4096) as u16;
        let layout = QueueLayout {
            qid,
            entries: self.cfg.io_entries.clamp(2, mqes),
            page_size: PAGE_SIZE,
            max_transfer: self.max_transfer,
            doorbell_stride: self.cap.doorbell_stride(),
            timeout: self.cfg.io_timeout,
        };
        let mem = Arc::new(alloc(
            &self.cfg,
            &self.mapper,
            layout.dma_len(),
            DmaUse::IoQueue(qid),
        )?);
        if let Some(sh) = &self.shadow {
            // A reused qid must not inherit the previous queue's shadow values.
            for db in [
                regs::sq_doorbell(qid, layout.doorbell_stride),
                regs::cq_doorbell(qid, layout.doorbell_stride),
            ] {
                sh.mem.store_u32(sh.base + db, 0, Ordering::Relaxed);
                sh.mem
                    .store_u32(sh.base + sh.page_size + db, 0, Ordering::Relaxed);
            }
        }
        let entries = layout.entries;
        let qp = QueuePair::new(self.regs.clone(), mem.clone(), layout, self.shadow.clone())?;
        self.admin_command(
            Sqe::create_cq(qid, entries, qp.cq_iova()),
            None,
            "create I/O CQ",
        )?;
        if let Err(e) = self.admin_command(
            Sqe::create_sq(qid, entries, qp.sq_iova(), qid),
            None,
            "create I/O SQ",
        ) {
            let _ = self.admin_command(Sqe::delete_cq(qid), None, "delete I/O CQ");
            return Err(e);
        }
        qp.hold().keep(mem);
        self.live.push(LiveQueue {
            qid,
            hold: qp.hold().clone(),
        });
        Ok(IoQpair::new(qp, ns, &self.info))
    }
}

impl<R: Registers> std::fmt::Debug for Controller<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("cap", &format_args!("{:#x}", self.cap.0))
            .field("model", &self.info.model)
            .field("namespaces", &self.namespaces)
            .field("io_queues", &self.io_queues)
            .field("shadow_doorbells", &self.shadow.is_some())
            .field("max_transfer", &self.max_transfer)
            .finish()
    }
}

fn alloc(
    cfg: &ControllerConfig,
    mapper: &Arc<dyn IovaMapper>,
    len: usize,
    what: DmaUse,
) -> Result<SharedMemory, Error> {
    let region = DmaRegion::allocate(len, cfg.dma_page, cfg.huge_pages, mapper.clone())
        .map_err(|source| NvmeError::Dma { what, len, source })?;
    Ok(SharedMemory::new(region))
}

/// CAP.TO, with at least 500 ms (a zero TO is a device bug, not a promise).
fn ready_timeout(cap: Cap) -> Duration {
    Duration::from_millis(cap.timeout_ms().max(500))
}

/// Polls CSTS until `done` holds, at most `timeout`; CFS (or all ones: the device is gone)
/// ends the wait early. Returns the last value read.
fn wait_csts<R: Registers + ?Sized>(
    regs: &R,
    _cap: Cap,
    timeout: Duration,
    waiting_for: &'static str,
    done: impl Fn(u32) -> bool,
) -> Result<u32, Error> {
    let start = Instant::now();
    loop {
        let v = regs.read32(regs::CSTS)?;
        if v != regs::CSTS_GONE && done(v) {
            return Ok(v);
        }
        if v != regs::CSTS_GONE && v & regs::CSTS_CFS != 0 {
            return Err(NvmeError::Fatal {
                register: "CSTS",
                value: v,
                during: waiting_for,
            }
            .into());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(NvmeError::Timeout {
                register: "CSTS",
                value: v,
                waiting_for,
                waited_ms: waited.as_millis() as u64,
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
