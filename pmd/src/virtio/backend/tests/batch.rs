//! Packed rings taken a cache line (four descriptors) at a time: a lying buffer inside a
//! batch is counted and given back unused as on the single path, the rest of the batch goes
//! through; a chain in the line sends the ring back to single descriptors.

use vm_memory::{Bytes, GuestAddress};

use super::liar::{BUFS, F_NEXT, F_WRITE, Liar, ring_at, rx_once};
use super::*;
use crate::virtio::NET_HDR_LEN;
use crate::virtio::backend::ChainFault;

/// `VIRTQ_DESC_F_AVAIL` and `VIRTQ_DESC_F_USED`: available and used on the first lap.
const AVAIL: u16 = 1 << 7;
const USED: u16 = 1 << 15;

/// Outside the liar's memory table.
const NOWHERE: u64 = 0x10;

impl Liar {
    /// Writes packed descriptor `i` of ring `r`, available (its flags last).
    fn packed(&self, r: u16, i: u16, addr: u64, len: u32, id: u16, flags: u16) {
        let at = ring_at(r).desc + 16 * u64::from(i);
        self.mem.write_obj(addr.to_le(), GuestAddress(at)).unwrap();
        let mem = &self.mem;
        mem.write_obj(len.to_le(), GuestAddress(at + 8)).unwrap();
        mem.write_obj(id.to_le(), GuestAddress(at + 12)).unwrap();
        let flags = (flags | AVAIL).to_le();
        mem.write_obj(flags, GuestAddress(at + 14)).unwrap();
    }

    /// A transmit buffer in slot `i` (header + `frame`), `len` bytes long, at `addr` or
    /// its own place.
    fn packed_tx(&self, i: u16, frame: &[u8], addr: Option<u64>, flags: u16) -> u32 {
        let at = BUFS + 0x800 * u64::from(i);
        let mut bytes = vec![0u8; NET_HDR_LEN];
        bytes.extend_from_slice(frame);
        self.mem.write_slice(&bytes, GuestAddress(at)).unwrap();
        let len = bytes.len() as u32;
        self.packed(1, i, addr.unwrap_or(at), len, 20 + i, flags);
        len
    }

    /// Ring `r`'s slot `i` as the device left it: id, length, flags.
    fn slot(&self, r: u16, i: u16) -> (u16, u32, u16) {
        let at = ring_at(r).desc + 16 * u64::from(i);
        let len: u32 = self.mem.read_obj(GuestAddress(at + 8)).unwrap();
        let id: u16 = self.mem.read_obj(GuestAddress(at + 12)).unwrap();
        let flags: u16 = self.mem.read_obj(GuestAddress(at + 14)).unwrap();
        (u16::from_le(id), u32::from_le(len), u16::from_le(flags))
    }
}

#[test]
fn a_lying_buffer_in_a_batch_is_refused_alone_and_a_chain_falls_back() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let mut port = backend(&dir, "batch-rx", 1, &bpool);
    let liar = Liar::connect(&port, dir.as_path(), feature::RING_PACKED);
    let mut q = port.take_queues().unwrap();
    let done = AVAIL | USED;
    // Slots 0-3: one cache line of single buffers, the third outside the table.
    for i in 0..4 {
        let addr = (i == 2).then_some(NOWHERE);
        liar.packed_tx(i, &frame(u32::from(i), 60), addr, 0);
    }
    let got = rx_once(&mut q.rx[0]);
    assert_eq!(got, vec![frame(0, 60), frame(1, 60), frame(3, 60)]);
    let len = (NET_HDR_LEN + 60) as u32;
    let fault = ChainFault::Memory { addr: NOWHERE, len };
    assert_eq!(port.take_chain_fault(1), Some(fault));
    let c = q.rx[0].counters().snapshot();
    assert_eq!((c.packets, c.errors), (3, 1));
    for i in 0..4 {
        assert_eq!(liar.slot(1, i), (20 + i, 0, done), "slot {i} given back");
    }
    // Slots 4-7: a two-descriptor chain in the line; taken one by one, every frame whole.
    liar.packed_tx(4, &frame(4, 60), None, 0);
    let head = liar.packed_tx(5, &frame(5, 60)[..30], None, F_NEXT);
    let rest = BUFS + 0x800 * 5 + u64::from(head);
    liar.mem
        .write_slice(&frame(5, 60)[30..], GuestAddress(rest))
        .unwrap();
    liar.packed(1, 6, rest, 30, 26, 0);
    liar.packed_tx(7, &frame(7, 60), None, 0);
    let got = rx_once(&mut q.rx[0]);
    assert_eq!(got, vec![frame(4, 60), frame(5, 60), frame(7, 60)]);
    assert_eq!(liar.slot(1, 5), (26, 0, done), "the chain's id, once");
    assert_eq!(liar.slot(1, 6).2, AVAIL, "skipped");
    assert_eq!(liar.slot(1, 7), (27, 0, done));
    assert_eq!(port.take_fault(1), None);
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    drop(q);
    assert_eq!(bpool.available(), 64, "every buffer back");
}

#[test]
fn a_batch_of_receive_buffers_takes_whole_frames_and_refuses_a_lying_one() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let mut port = backend(&dir, "batch-tx", 1, &bpool);
    let features = feature::RING_PACKED | feature::MRG_RXBUF;
    let liar = Liar::connect(&port, dir.as_path(), features);
    let mut q = port.take_queues().unwrap();
    for i in 0..4 {
        let addr = if i == 1 {
            NOWHERE
        } else {
            BUFS + 0x800 * u64::from(i)
        };
        liar.packed(0, i, addr, 512, 30 + i, F_WRITE);
    }
    let mut out = batch(&bpool, 0, 4, 60);
    assert_eq!(q.tx[0].tx_burst(&mut out), 4, "all taken");
    let fault = ChainFault::Memory {
        addr: NOWHERE,
        len: 512,
    };
    assert_eq!(port.take_chain_fault(0), Some(fault));
    let c = q.tx[0].counters().snapshot();
    assert_eq!((c.packets, c.errors), (3, 1));
    let total = (NET_HDR_LEN + 60) as u32;
    let done = AVAIL | USED | F_WRITE;
    for i in [0u16, 2, 3] {
        assert_eq!(liar.slot(0, i), (30 + i, total, done), "slot {i}");
        let mut b = vec![0u8; total as usize];
        let at = GuestAddress(BUFS + 0x800 * u64::from(i));
        liar.mem.read_slice(&mut b, at).unwrap();
        assert_eq!(u16::from_le_bytes([b[10], b[11]]), 1, "num_buffers");
        assert_eq!(&b[NET_HDR_LEN..], &frame(u32::from(i), 60)[..]);
    }
    assert_eq!(liar.slot(0, 1), (31, 0, AVAIL | USED), "given back unused");
    assert_eq!(port.take_fault(0), None);
    drop(q);
    assert_eq!(bpool.available(), 64);
}
