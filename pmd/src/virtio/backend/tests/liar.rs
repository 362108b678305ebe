//! A frontend that lies: its memory is a file in the test's directory, mapped by the test at
//! guest address [`GPA`], its rings written by hand; its messages go through Sluice's
//! frontend ([`VhostUserDevice`]) or raw onto the socket. Every lie is counted or refused,
//! the ring stopped where the ring itself is broken, the connection closed where the
//! protocol is, and the port keeps serving.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use sluice_mempool::{FdRegion, Iova};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use super::*;
use crate::virtio::RingKind;
use crate::virtio::backend::{ChainFault, RingFault};
use crate::virtio::vhost_user::{VhostUserDevice, VringSetup};

/// Where the liar says its memory is.
const GPA: u64 = 0x1_0000_0000;
/// Its size.
const MEM: u64 = 1 << 16;
/// Ring entries.
const SIZE: u16 = 8;
/// Where its packet buffers start.
pub(super) const BUFS: u64 = GPA + 0x8000;

pub(super) const F_NEXT: u16 = 1;
pub(super) const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

pub(super) struct Liar {
    dev: VhostUserDevice,
    file: File,
    pub(super) mem: GuestMemoryMmap<()>,
    /// Per ring: next available index written.
    avail: [u16; 2],
}

pub(super) fn ring_at(r: u16) -> VringSetup {
    let base = GPA + 0x1000 * u64::from(r);
    VringSetup {
        kind: RingKind::Split,
        size: SIZE,
        desc: base,
        driver: base + 0x200,
        device: base + 0x400,
    }
}

impl Liar {
    /// Connects, negotiates `features` (VERSION_1 and what else is offered of them), sends
    /// the memory table and sets rings 0 and 1 up as rings of 8 (packed with `RING_PACKED`).
    pub(super) fn connect(port: &VhostUserBackendPort, dir: &Path, features: u64) -> Self {
        let path = dir.join("liar-mem");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(MEM).unwrap();
        let view = MmapRegion::<()>::from_file(
            FileOffset::new(file.try_clone().unwrap(), 0),
            MEM as usize,
        )
        .unwrap();
        let mem = GuestMemoryMmap::from_regions(vec![
            GuestRegionMmap::new(view, GuestAddress(GPA)).unwrap(),
        ])
        .unwrap();
        let mut dev = VhostUserDevice::connect(port.path()).unwrap();
        dev.negotiate(feature::VERSION_1, features).unwrap();
        let mut liar = Liar {
            dev,
            file,
            mem,
            avail: [0; 2],
        };
        liar.table(MEM, GPA).unwrap();
        for r in 0..2 {
            let mut ring = ring_at(r);
            if features & feature::RING_PACKED != 0 {
                ring.kind = RingKind::Packed;
            }
            liar.dev.setup_vring(r, &ring).unwrap();
        }
        liar
    }

    /// Sends a memory table of the file's first `len` bytes at `gpa` (= its address here).
    fn table(
        &mut self,
        len: u64,
        gpa: u64,
    ) -> Result<(), crate::virtio::vhost_user::VhostUserError> {
        let region = FdRegion {
            fd: self.file.as_fd(),
            offset: 0,
            len,
            va: gpa,
            iova: Iova(gpa),
        };
        self.dev.set_mem_table(&[region])
    }

    /// Writes descriptor `i` of ring `r`.
    fn desc(&self, r: u16, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = ring_at(r).desc + 16 * u64::from(i);
        self.mem.write_obj(addr.to_le(), GuestAddress(at)).unwrap();
        self.mem
            .write_obj(len.to_le(), GuestAddress(at + 8))
            .unwrap();
        self.mem
            .write_obj(flags.to_le(), GuestAddress(at + 12))
            .unwrap();
        self.mem
            .write_obj(next.to_le(), GuestAddress(at + 14))
            .unwrap();
    }

    /// Makes chain `head` available on ring `r`, moving the index by `step` (1 when honest).
    fn post(&mut self, r: u16, head: u16, step: u16) {
        let avail = ring_at(r).driver;
        let i = &mut self.avail[usize::from(r)];
        let slot = GuestAddress(avail + 4 + 2 * u64::from(*i % SIZE));
        self.mem.write_obj(head.to_le(), slot).unwrap();
        *i = i.wrapping_add(step);
        self.mem
            .write_obj(i.to_le(), GuestAddress(avail + 2))
            .unwrap();
    }

    /// The used index of ring `r`, and used entry `k`.
    fn used(&self, r: u16, k: u16) -> (u16, u32, u32) {
        let used = ring_at(r).device;
        let idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
        let at = used + 4 + 8 * u64::from(k % SIZE);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        (u16::from_le(idx), u32::from_le(id), u32::from_le(len))
    }

    /// A good 1-descriptor transmit chain (header + `frame`) in descriptor `i`, posted.
    fn good_tx(&mut self, i: u16, frame: &[u8]) {
        let at = BUFS + 0x800 * u64::from(i);
        let mut bytes = vec![0u8; crate::virtio::NET_HDR_LEN];
        bytes.extend_from_slice(frame);
        self.mem.write_slice(&bytes, GuestAddress(at)).unwrap();
        self.desc(1, i, at, bytes.len() as u32, 0, 0);
        self.post(1, i, 1);
    }
}

/// Writes a lie into the liar's rings.
type Lie = dyn Fn(&Liar);

pub(super) fn rx_once(q: &mut super::super::VhostBackendRxQueue) -> Vec<Vec<u8>> {
    let mut b: Batch<PktBuf> = Batch::new();
    q.rx_burst(&mut b);
    b.iter().map(|p| p.data().to_vec()).collect()
}

#[test]
fn bad_chains_are_given_back_and_counted_the_ring_goes_on() {
    let dir = temp_dir();
    let bpool = pool("b", 256, false);
    let mut port = backend(&dir, "lie", 1, &bpool);
    let mut liar = Liar::connect(&port, dir.as_path(), 0);
    assert_eq!(port.live_rings(), 2);
    let mut q = port.take_queues().unwrap();
    let lies: [(&str, &Lie, ChainFault); 5] = [
        (
            "outside the table",
            &|l| l.desc(1, 0, 0x10, 64, 0, 0),
            ChainFault::Memory {
                addr: 0x10,
                len: 64,
            },
        ),
        (
            "past the region",
            &|l| l.desc(1, 0, GPA + MEM - 16, 1024, 0, 0),
            ChainFault::Memory {
                addr: GPA + MEM - 16,
                len: 1024,
            },
        ),
        (
            "device-writable on a transmit ring",
            &|l| l.desc(1, 0, BUFS, 64, F_WRITE, 0),
            ChainFault::WrongDirection,
        ),
        (
            "a loop",
            &|l| {
                l.desc(1, 0, BUFS, 64, F_NEXT, 1);
                l.desc(1, 1, BUFS, 64, F_NEXT, 0);
            },
            ChainFault::Broken,
        ),
        (
            "an indirect table (not offered)",
            &|l| l.desc(1, 0, BUFS, 64, F_INDIRECT, 0),
            ChainFault::Indirect,
        ),
    ];
    for (k, (what, lie, fault)) in lies.iter().enumerate() {
        lie(&liar);
        liar.post(1, 0, 1);
        assert!(rx_once(&mut q.rx[0]).is_empty(), "{what}: nothing received");
        assert_eq!(port.take_chain_fault(1), Some(*fault), "{what}");
        assert_eq!(
            q.rx[0].counters().snapshot().errors,
            k as u64 + 1,
            "{what}: counted"
        );
        assert_eq!(
            liar.used(1, k as u16),
            (k as u16 + 1, 0, 0),
            "{what}: given back unused"
        );
    }
    // The ring still works.
    liar.good_tx(2, &frame(5, 60));
    assert_eq!(rx_once(&mut q.rx[0]), vec![frame(5, 60)]);
    assert_eq!(port.take_fault(1), None);
    assert_eq!(port.live_rings(), 2);
    drop(q);
    assert_eq!(bpool.available(), 256, "every buffer back");
}

#[test]
fn an_available_index_jump_stops_the_ring() {
    let dir = temp_dir();
    let bpool = pool("b", 256, false);
    let mut port = backend(&dir, "jump", 1, &bpool);
    let mut liar = Liar::connect(&port, dir.as_path(), 0);
    let mut q = port.take_queues().unwrap();
    liar.good_tx(0, &frame(1, 60));
    assert_eq!(rx_once(&mut q.rx[0]).len(), 1);
    liar.post(1, 0, SIZE + 1);
    assert!(rx_once(&mut q.rx[0]).is_empty());
    assert_eq!(
        port.take_fault(1),
        Some(RingFault::AvailJump {
            avail: SIZE + 2,
            next: 1
        })
    );
    assert_eq!(port.live_rings(), 1, "ring 1 stopped, ring 0 not");
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    // Stopped means stopped: a good chain now is not taken.
    liar.good_tx(1, &frame(2, 60));
    assert!(rx_once(&mut q.rx[0]).is_empty());
    assert_eq!(liar.used(1, 0).0, 1);
    drop(q);
    assert_eq!(bpool.available(), 256);
}

/// A kicked ring starts enabled until an enable is heard after SET_FEATURES (QEMU 7.2 sends
/// its enables before, where they are refused); once one is heard, the frontend's requests
/// alone rule: a ring it disables stays disabled, and takes nothing.
#[test]
fn a_ring_the_frontend_disables_takes_nothing() {
    let dir = temp_dir();
    let bpool = pool("b", 256, false);
    let mut port = backend(&dir, "disable", 1, &bpool);
    let mut liar = Liar::connect(&port, dir.as_path(), 0);
    let mut q = port.take_queues().unwrap();
    assert_eq!(port.live_rings(), 2);
    liar.dev.enable_vring(1, false).unwrap();
    assert_eq!(
        port.live_rings(),
        1,
        "the disabled transmit ring is not live"
    );
    liar.good_tx(0, &frame(1, 60));
    assert!(
        rx_once(&mut q.rx[0]).is_empty(),
        "a disabled ring is not read"
    );
    liar.dev.enable_vring(1, true).unwrap();
    assert_eq!(port.live_rings(), 2);
    assert_eq!(
        rx_once(&mut q.rx[0]).len(),
        1,
        "enabled again, the chain is taken"
    );
    drop(q);
    assert_eq!(bpool.available(), 256);
}

#[test]
fn a_memory_table_changing_mid_run() {
    let dir = temp_dir();
    let bpool = pool("b", 256, false);
    let mut port = backend(&dir, "remap", 1, &bpool);
    let mut liar = Liar::connect(&port, dir.as_path(), 0);
    let mut q = port.take_queues().unwrap();
    liar.good_tx(0, &frame(1, 60));
    assert_eq!(rx_once(&mut q.rx[0]).len(), 1);
    // The same memory again (QEMU re-sends the table on hot-plug): the rings go on.
    liar.table(MEM, GPA).unwrap();
    assert_eq!(port.control_stats().mem_tables, 2);
    liar.good_tx(1, &frame(2, 60));
    assert_eq!(rx_once(&mut q.rx[0]), vec![frame(2, 60)]);
    // A table that no longer holds the rings: they stop, nothing is read from the old one.
    liar.table(0x1000, GPA + 0x10_0000).unwrap();
    assert_eq!(port.live_rings(), 0);
    assert!(matches!(
        port.take_fault(1),
        Some(RingFault::Untranslated { .. })
    ));
    liar.good_tx(2, &frame(3, 60));
    assert!(rx_once(&mut q.rx[0]).is_empty());
    // A table larger than its file is refused (it would fault when touched).
    assert!(liar.table(4 * MEM, GPA).is_err());
    assert!(port.connected(), "refused, not disconnected");
    drop(q);
    assert_eq!(bpool.available(), 256);
}

#[test]
fn ring_addresses_outside_the_table_are_refused() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let port = backend(&dir, "addr", 2, &bpool);
    let mut liar = Liar::connect(&port, dir.as_path(), 0);
    let outside = VringSetup {
        desc: 0x1000,
        ..ring_at(2)
    };
    assert!(liar.dev.setup_vring(2, &outside).is_err());
    assert!(matches!(
        port.take_fault(2),
        Some(RingFault::Untranslated { addr: 0x1000 })
    ));
    let straddling = VringSetup {
        desc: GPA + MEM - 64,
        ..ring_at(3)
    };
    assert!(liar.dev.setup_vring(3, &straddling).is_err());
    assert!(matches!(
        port.take_fault(3),
        Some(RingFault::OutsideMemory { .. })
    ));
    let st = port.control_stats();
    assert_eq!((st.refused, st.bad_messages, st.disconnects), (2, 0, 0));
    assert!(port.connected());
    assert_eq!(port.live_rings(), 2);
}

/// Writes into the liar's receive ring `n` chains of one `len`-byte writable buffer each.
fn rx_buffers(liar: &mut Liar, n: u16, len: u32) {
    for i in 0..n {
        liar.desc(0, i, BUFS + 0x800 * u64::from(i), len, F_WRITE, 0);
        liar.post(0, i, 1);
    }
}

#[test]
fn merged_receive_buffers_carry_one_frame() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let mut port = backend(&dir, "mrg", 1, &bpool);
    let mut liar = Liar::connect(&port, dir.as_path(), feature::MRG_RXBUF);
    let mut q = port.take_queues().unwrap();
    rx_buffers(&mut liar, 4, 512);
    let f = frame(9, 1514);
    let mut out = batch(&bpool, 9, 1, 1514);
    assert_eq!(q.tx[0].tx_burst(&mut out), 1);
    let total = 12 + 1514;
    assert_eq!(liar.used(0, 0), (3, 0, 512));
    assert_eq!(liar.used(0, 1), (3, 1, 512));
    assert_eq!(liar.used(0, 2), (3, 2, total - 1024));
    let mut got = Vec::new();
    for i in 0..3u64 {
        let mut b = vec![0u8; 512];
        liar.mem
            .read_slice(&mut b, GuestAddress(BUFS + 0x800 * i))
            .unwrap();
        got.extend_from_slice(&b);
    }
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 3, "num_buffers");
    assert_eq!(&got[12..total as usize], &f[..]);
    assert_eq!(q.tx[0].counters().snapshot().packets, 1);
    drop(q);
    assert_eq!(bpool.available(), 64);
}

#[test]
fn without_merging_a_frame_too_large_for_a_buffer_is_dropped() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let mut port = backend(&dir, "nomrg", 1, &bpool);
    let mut liar = Liar::connect(&port, dir.as_path(), 0);
    let mut q = port.take_queues().unwrap();
    rx_buffers(&mut liar, 2, 512);
    let mut out = batch(&bpool, 1, 1, 1514);
    assert_eq!(q.tx[0].tx_burst(&mut out), 1, "taken");
    assert_eq!(port.take_chain_fault(0), Some(ChainFault::TooBig));
    assert_eq!(liar.used(0, 0).0, 0, "no buffer used");
    let mut out = batch(&bpool, 2, 1, 200);
    assert_eq!(q.tx[0].tx_burst(&mut out), 1);
    assert_eq!(liar.used(0, 0), (1, 0, 212));
    let c = q.tx[0].counters().snapshot();
    assert_eq!((c.packets, c.errors), (1, 1));
    drop(q);
    assert_eq!(bpool.available(), 64);
}

/// A raw message: request code, flags (version 1), a payload, file descriptors.
fn raw(sock: &UnixStream, code: u32, size: u32, payload: &[u8], fds: &[i32]) {
    let mut msg = Vec::new();
    msg.extend_from_slice(&code.to_le_bytes());
    msg.extend_from_slice(&1u32.to_le_bytes());
    msg.extend_from_slice(&size.to_le_bytes());
    msg.extend_from_slice(payload);
    sock.send_with_fds(&[&msg[..]], fds).unwrap();
}

/// Open descriptors of this process naming `probe`.
fn probes(probe: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t == probe)
        .count()
}

/// Sends a message that breaks the protocol, checks the connection is closed, counted, and
/// every fd it carried closed; then that a real frontend is served after it.
fn closes(port: &VhostUserBackendPort, probe: &Path, send: impl FnOnce(&UnixStream, i32)) {
    let before = port.control_stats();
    let file = File::open(probe).unwrap();
    let mut sock = UnixStream::connect(port.path()).unwrap();
    send(&sock, file.as_raw_fd());
    let mut buf = [0u8; 64];
    // The backend closes its end: end of file (or a reset).
    assert!(matches!(sock.read(&mut buf), Ok(0) | Err(_)));
    let after = port.control_stats();
    assert_eq!(after.bad_messages, before.bad_messages + 1);
    assert_eq!(after.disconnects, before.disconnects + 1);
    assert_eq!(
        probes(probe),
        1,
        "only this test's own descriptor is left open"
    );
    drop(file);
    let upool = pool("u", 256, true);
    let mut user = frontend(port, &user_cfg(false, 1, 64), &upool);
    assert!(user.take_queues().is_some());
    drop(user);
    until("the frontend's disconnect", || {
        port.control_stats().disconnects == after.disconnects + 1
    });
}

#[test]
fn protocol_breaking_messages_close_the_connection_without_a_leak() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let port = backend(&dir, "raw", 1, &bpool);
    let probe = dir.as_path().join("fd-probe");
    File::create(&probe).unwrap().write_all(b"probe").unwrap();
    // GET_FEATURES (1) carrying three descriptors it should not.
    closes(&port, &probe, |s, fd| raw(s, 1, 0, &[], &[fd, fd, fd]));
    // SET_MEM_TABLE (5) with one region and three descriptors.
    let mut table = Vec::new();
    table.extend_from_slice(&1u32.to_le_bytes());
    table.extend_from_slice(&0u32.to_le_bytes());
    for v in [GPA, 0x1000, GPA, 0] {
        table.extend_from_slice(&v.to_le_bytes());
    }
    let t = table.clone();
    closes(&port, &probe, |s, fd| {
        raw(s, 5, t.len() as u32, &t, &[fd, fd, fd])
    });
    // SET_MEM_TABLE with one region and no descriptor.
    closes(&port, &probe, |s, _| {
        raw(s, 5, table.len() as u32, &table, &[])
    });
    // SET_VRING_CALL (13) saying an fd comes, without one.
    closes(&port, &probe, |s, _| {
        raw(s, 13, 8, &0u64.to_le_bytes(), &[])
    });
    // A request nobody defined.
    closes(&port, &probe, |s, _| raw(s, 999, 0, &[], &[]));
    // Oversized: a payload size beyond the protocol's limit.
    closes(&port, &probe, |s, _| raw(s, 1, 0x1000_0000, &[], &[]));
    // Truncated: SET_FEATURES (2) announcing 8 bytes, sending 4, then the end.
    closes(&port, &probe, |s, _| {
        raw(s, 2, 8, &[0; 4], &[]);
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    // A truncated header.
    closes(&port, &probe, |s, _| {
        s.send_with_fds(&[&[1u8, 0, 0][..]], &[]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let st = port.control_stats();
    assert_eq!((st.bad_messages, st.connections), (8, 16));
}
