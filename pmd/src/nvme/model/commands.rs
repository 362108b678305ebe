//! The commands the model executes: admin (identify, number of queues, queue creation and
//! deletion, doorbell buffer config) and NVM I/O on the RAM namespace.

use super::mem::{gather, prp_segments, scatter};
use super::{Cq, PAGE, Sq, State};
use crate::nvme::cmd::{Sqe, admin, io};
use crate::nvme::status::{NvmeStatus, StatusCodeType};

impl State {
    pub(super) fn admin(&mut self, sqe: &Sqe) -> (u16, u32) {
        let ok = (0, 0);
        let invalid_field = (NvmeStatus::generic(0x02, true).to_raw(), 0);
        let specific = |sc: u8| {
            let mut st = NvmeStatus::generic(sc, true);
            st.sct = StatusCodeType::CommandSpecific;
            (st.to_raw(), 0)
        };
        let n = self.sqs.len() as u16 - 1;
        let qid = sqe.cdw[10] as u16;
        let size = (sqe.cdw[10] >> 16) as u16;
        match sqe.opcode() {
            admin::IDENTIFY => {
                let mut page = [0u8; 4096];
                match sqe.cdw[10] as u8 {
                    admin::CNS_CONTROLLER => self.identify_ctrl(&mut page),
                    admin::CNS_ACTIVE_NS_LIST => {
                        if sqe.cdw[1] < 1 {
                            page[0] = 1;
                        }
                    }
                    admin::CNS_NAMESPACE => match sqe.cdw[1] {
                        0 => return (NvmeStatus::generic(0x0B, true).to_raw(), 0),
                        1 => self.identify_ns(&mut page),
                        _ => {}
                    },
                    _ => return invalid_field,
                }
                match prp_segments(sqe.prp1(), sqe.prp2(), 4096) {
                    Ok(segs) => scatter(&segs, &page),
                    Err(st) => return (st, 0),
                }
                ok
            }
            admin::SET_FEATURES if sqe.cdw[10] as u8 == admin::FID_NUM_QUEUES => {
                if self.cqs.iter().skip(1).any(Option::is_some) {
                    return (NvmeStatus::generic(0x0C, true).to_raw(), 0);
                }
                let m = u32::from(n - 1);
                (0, m << 16 | m)
            }
            admin::CREATE_CQ => {
                if qid == 0 || qid > n || self.cqs[usize::from(qid)].is_some() {
                    return specific(0x01);
                }
                if size == 0 || size >= self.cfg.max_queue_entries {
                    return specific(0x02);
                }
                if sqe.cdw[11] & 1 == 0 || !sqe.prp1().is_multiple_of(PAGE) {
                    return invalid_field;
                }
                if sqe.cdw[11] >> 16 != 0 {
                    return specific(0x08);
                }
                self.cqs[usize::from(qid)] = Some(Cq {
                    base: sqe.prp1(),
                    size: size + 1,
                    tail: 0,
                    head: 0,
                    phase: true,
                });
                ok
            }
            admin::CREATE_SQ => {
                let cqid = (sqe.cdw[11] >> 16) as u16;
                if qid == 0 || qid > n || self.sqs[usize::from(qid)].is_some() {
                    return specific(0x01);
                }
                if cqid == 0 || cqid > n || self.cqs[usize::from(cqid)].is_none() {
                    return specific(0x00);
                }
                if size == 0 || size >= self.cfg.max_queue_entries {
                    return specific(0x02);
                }
                if sqe.cdw[11] & 1 == 0 || !sqe.prp1().is_multiple_of(PAGE) {
                    return invalid_field;
                }
                self.sqs[usize::from(qid)] = Some(Sq {
                    base: sqe.prp1(),
                    size: size + 1,
                    head: 0,
                    tail: 0,
                    cqid,
                });
                ok
            }
            admin::DELETE_SQ => {
                if qid == 0 || qid > n || self.sqs[usize::from(qid)].take().is_none() {
                    return specific(0x01);
                }
                ok
            }
            admin::DELETE_CQ => {
                if qid == 0 || qid > n || self.cqs[usize::from(qid)].is_none() {
                    return specific(0x01);
                }
                if self.sqs.iter().flatten().any(|s| s.cqid == qid) {
                    return specific(0x0C);
                }
                self.cqs[usize::from(qid)] = None;
                ok
            }
            admin::DOORBELL_BUFFER_CONFIG if self.cfg.doorbell_buffer => {
                let (db, ei) = (sqe.prp1(), sqe.prp2());
                if db == 0 || ei == 0 || db % PAGE != 0 || ei % PAGE != 0 {
                    return invalid_field;
                }
                self.dbbuf = Some((db, ei));
                ok
            }
            _ => (NvmeStatus::generic(0x01, true).to_raw(), 0),
        }
    }

    fn identify_ctrl(&self, p: &mut [u8; 4096]) {
        p[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        p[0x04..0x0E].copy_from_slice(b"SLUICE0001");
        p[0x18..0x28].copy_from_slice(b"Sluice soft NVMe");
        p[0x40..0x43].copy_from_slice(b"1.0");
        p[0x4D] = self.cfg.mdts;
        let oacs: u16 = if self.cfg.doorbell_buffer { 1 << 8 } else { 0 };
        p[0x100..0x102].copy_from_slice(&oacs.to_le_bytes());
        p[0x200] = 0x66;
        p[0x201] = 0x44;
        p[0x204..0x208].copy_from_slice(&1u32.to_le_bytes());
        p[0x208..0x20A].copy_from_slice(&0x000Cu16.to_le_bytes());
        p[0x20D] = 1;
    }

    fn identify_ns(&self, p: &mut [u8; 4096]) {
        p[0..8].copy_from_slice(&self.cfg.blocks.to_le_bytes());
        p[8..16].copy_from_slice(&self.cfg.blocks.to_le_bytes());
        p[0x19] = 0;
        p[0x1A] = 0;
        let lbads = self.cfg.block_size.trailing_zeros();
        p[0x80..0x84].copy_from_slice(&(lbads << 16).to_le_bytes());
    }

    pub(super) fn io(&mut self, sqe: &Sqe) -> u16 {
        let err = |sc: u8, dnr: bool| NvmeStatus::generic(sc, dnr).to_raw();
        if sqe.cdw[1] != 1 {
            return err(0x0B, true);
        }
        let bs = u64::from(self.cfg.block_size);
        let range = |s: &State| {
            let end = sqe.slba().checked_add(u64::from(sqe.nlb()))?;
            (end <= s.cfg.blocks).then(|| (sqe.slba() * bs) as usize..(end * bs) as usize)
        };
        match sqe.opcode() {
            io::FLUSH => 0,
            io::READ | io::WRITE => {
                let Some(r) = range(self) else {
                    return err(0x80, true);
                };
                if self.cfg.mdts != 0 && r.len() as u64 > PAGE << self.cfg.mdts {
                    return err(0x02, true);
                }
                let segs = match prp_segments(sqe.prp1(), sqe.prp2(), r.len()) {
                    Ok(s) => s,
                    Err(st) => return st,
                };
                if sqe.opcode() == io::READ {
                    if std::mem::take(&mut self.faults.corrupt_next_read) {
                        let mut data = self.disk[r].to_vec();
                        data[0] = !data[0];
                        scatter(&segs, &data);
                        return 0;
                    }
                    scatter(&segs, &self.disk[r]);
                } else {
                    gather(&segs, &mut self.disk[r]);
                }
                0
            }
            io::WRITE_ZEROES => {
                let Some(r) = range(self) else {
                    return err(0x80, true);
                };
                self.disk[r].fill(0);
                0
            }
            io::DSM => {
                let nr = (sqe.cdw[10] & 0xff) as usize + 1;
                let mut ranges = vec![0u8; nr * 16];
                match prp_segments(sqe.prp1(), sqe.prp2(), ranges.len()) {
                    Ok(segs) => gather(&segs, &mut ranges),
                    Err(st) => return st,
                }
                if sqe.cdw[11] & 1 << 2 != 0 {
                    for r in ranges.chunks_exact(16) {
                        let nlb = u64::from(u32::from_le_bytes([r[4], r[5], r[6], r[7]]));
                        let mut slba = [0u8; 8];
                        slba.copy_from_slice(&r[8..16]);
                        let slba = u64::from_le_bytes(slba);
                        let Some(end) = slba.checked_add(nlb).filter(|&e| e <= self.cfg.blocks)
                        else {
                            return err(0x80, true);
                        };
                        self.disk[(slba * bs) as usize..(end * bs) as usize].fill(0);
                    }
                }
                0
            }
            _ => err(0x01, true),
        }
    }
}
