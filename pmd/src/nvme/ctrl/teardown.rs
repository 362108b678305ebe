//! Teardown: deleting I/O queue pairs, shutdown (NVMe 1.4 §7.6.2), disable, and what happens to
//! queue memory and in-flight buffers when the device does not confirm it stopped.

use std::sync::Arc;

use super::{Controller, ready_timeout, wait_csts};
use crate::error::Error;
use crate::nvme::cmd::Sqe;
use crate::nvme::io::IoQpair;
use crate::nvme::regs;
use crate::quiesce::DeviceHold;
use crate::regs::Registers;

/// An I/O queue the device may use: its memory, and its queue pair's outstanding buffers
/// once the pair is dropped, stay in `hold` until the device can no longer touch them.
pub(super) struct LiveQueue {
    pub(super) qid: u16,
    pub(super) hold: Arc<DeviceHold>,
}

impl LiveQueue {
    /// The device can no longer touch the queue: release it.
    pub(super) fn retire(self) {
        self.hold.confirm_stopped();
    }
}

impl<R: Registers> Controller<R> {
    /// Deletes an I/O queue pair (SQ first, then CQ). Commands still outstanding are dropped
    /// with their buffers once the device can no longer touch them.
    ///
    /// # Errors
    /// Admin command errors; the queue's memory is then kept until the controller shuts down.
    pub fn delete_io_qpair(&mut self, qp: IoQpair<R>) -> Result<(), Error> {
        let qid = qp.qid();
        self.delete_queues(qid)?;
        drop(qp);
        Ok(())
    }

    fn delete_queues(&mut self, qid: u16) -> Result<(), Error> {
        self.admin_command(Sqe::delete_sq(qid), None, "delete I/O SQ")?;
        self.admin_command(Sqe::delete_cq(qid), None, "delete I/O CQ")?;
        if let Some(i) = self.live.iter().position(|l| l.qid == qid) {
            self.live.swap_remove(i).retire();
        }
        Ok(())
    }

    /// Normal shutdown (NVMe 1.4 §7.6.2): deletes the remaining I/O queues, sets CC.SHN = 01,
    /// waits for CSTS.SHST = 10 (bounded), then clears CC.EN and waits for RDY = 0. Queue
    /// memory is unmapped when the controller drops, after this.
    ///
    /// # Errors
    /// [`NvmeError::Timeout`](crate::nvme::NvmeError::Timeout) naming CSTS and its value when
    /// shutdown does not complete; admin errors while deleting queues (shutdown still proceeds).
    pub fn shutdown(mut self) -> Result<(), Error> {
        if self.regs.removed() {
            // Released after a hot-unplug: nothing to shut down (see `disable`).
            return self.disable();
        }
        let mut first_err = None;
        let qids: Vec<u16> = self.live.iter().map(|l| l.qid).collect();
        for qid in qids {
            if let Err(e) = self.delete_queues(qid) {
                first_err.get_or_insert(e);
            }
        }
        let cc = self.regs.read32(regs::CC)?;
        self.regs
            .write32(regs::CC, (cc & !regs::CC_SHN_MASK) | regs::CC_SHN_NORMAL)?;
        let shst = wait_csts(
            &*self.regs,
            self.cap,
            self.cfg.shutdown_timeout,
            "SHST = 10 (shutdown complete) after CC.SHN = 01",
            |v| v & regs::CSTS_SHST_MASK == regs::CSTS_SHST_COMPLETE,
        );
        let disable = self.disable();
        match (first_err, shst, disable) {
            (_, Err(e), _) | (_, _, Err(e)) | (Some(e), _, _) => Err(e),
            _ => Ok(()),
        }
    }

    /// Clears CC.EN and waits (bounded by CAP.TO) for RDY = 0; after it the device does no
    /// more DMA and every queue's memory may go.
    fn disable(&mut self) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        self.enabled = false;
        if self.regs.removed() {
            // VFIO released the device when the kernel asked for it back, and vfio-pci
            // disabled it (bus mastering off) on release: it touches no memory any more.
            self.admin.hold().confirm_stopped();
            self.live.drain(..).for_each(LiveQueue::retire);
            return Ok(());
        }
        let cc = self.regs.read32(regs::CC)?;
        self.regs
            .write32(regs::CC, cc & !(regs::CC_EN | regs::CC_SHN_MASK))?;
        let r = wait_csts(
            &*self.regs,
            self.cap,
            ready_timeout(self.cap),
            "RDY = 0 after CC.EN = 0",
            |v| v & regs::CSTS_RDY == 0,
        );
        if r.is_ok() {
            self.admin.hold().confirm_stopped();
            self.live.drain(..).for_each(LiveQueue::retire);
        }
        r.map(|_| ())
    }
}

impl<R: Registers> Drop for Controller<R> {
    fn drop(&mut self) {
        // Not shut down: at least stop the device before its queue memory is unmapped.
        if self.enabled
            && let Err(e) = self.disable()
        {
            eprintln!("sluice-pmd: NVMe controller drop: {e}");
        }
        // If the device did not confirm it stopped, the holds of the admin queue (with the
        // scratch pages) and of every live I/O queue leak what they keep as they go, rather
        // than let the device write into memory that may be reused.
    }
}
