//! A device removed from under a running port (hot-unplug, surprise removal): all-ones
//! register reads, or VFIO's release after the kernel asked for the device back. The port
//! goes down, its queues take and give nothing without touching the device, teardown does
//! not wait on it, and every buffer is back in its pool or held (never handed back while
//! the device might still write it).

use super::*;
use crate::net::{LinkStatus, NetPort, RxQueue, TxQueue};
use crate::virtio::model::Removed;
use crate::virtio::transport::Transport;
use sluice_mempool::{Batch, PktBuf};

fn frames(pool: &PktPool, n: u32) -> Batch<PktBuf> {
    let mut out: Batch<PktBuf> = Batch::new();
    for seq in 0..n {
        let mut p = pool.alloc().unwrap();
        p.extend_from_slice(&frame(seq, 64)).unwrap();
        out.push(p).unwrap();
    }
    out
}

/// A loopback port that has carried traffic; returns the pool's free count then.
fn running(engine: Rings, pool: &PktPool) -> (Arc<SoftVirtioNet>, Port, Queues, usize) {
    let (dev, mut port) = open(loopback(engine), &cfg(64), pool);
    let mut q = port.take_queues().unwrap();
    assert_eq!(q.tx[0].tx_burst(&mut frames(pool, 4)), 4);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 4);
    drop(got);
    q.tx[0].reclaim();
    assert_eq!(port.link(), LinkStatus::Up { speed_mbps: None });
    let home = pool.available();
    (dev, port, q, home)
}

type Queues = crate::net::Queues<
    crate::virtio::VirtioRxQueue<PciTransport<SoftVirtioNet>>,
    crate::virtio::VirtioTxQueue<PciTransport<SoftVirtioNet>>,
>;

/// The queues of a port whose device is gone take nothing and give nothing.
fn queues_are_down(q: &mut Queues, pool: &PktPool) {
    let mut out = frames(pool, 3);
    assert_eq!(q.tx[0].tx_burst(&mut out), 0, "nothing taken");
    assert_eq!(out.len(), 3, "the caller keeps its packets");
    drop(out);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
}

fn surprise_removal_downs_the_port_and_holds_posted_buffers(engine: Rings) {
    let pool = pool(512);
    let (dev, port, mut q, home) = running(engine, &pool);
    dev.remove(Removed::Surprise);
    let t = port.shared().transport();
    assert!(!t.gone(), "nothing read yet: the queues cannot know");
    // The status byte reads all ones: the link goes down and the transport is gone.
    assert_eq!(port.link(), LinkStatus::Down);
    assert!(t.gone());
    assert_eq!(
        t.status().unwrap_err().to_string(),
        "virtio model: device_status reads all ones: the device is gone (removed)"
    );
    queues_are_down(&mut q, &pool);
    assert_eq!(pool.available(), home);
    // Teardown: the reset cannot be confirmed (status reads 0xff) and fails at once, not
    // after the reset timeout; the posted receive buffers stay held (the device was never
    // seen to stop), the rest is home.
    drop(q);
    drop(port);
    assert_eq!(
        pool.available(),
        home,
        "posted buffers held, nothing else lost"
    );
}

fn released_device_downs_the_port_and_returns_every_buffer(engine: Rings) {
    let pool = pool(512);
    let (dev, port, mut q, _) = running(engine, &pool);
    dev.remove(Removed::Released);
    // Known at once, without a register read.
    assert!(port.shared().transport().gone());
    assert_eq!(port.link(), LinkStatus::Down);
    queues_are_down(&mut q, &pool);
    // vfio-pci disabled the released device: the reset is not needed, and everything the
    // device was given goes back.
    drop(q);
    drop(port);
    assert_eq!(
        pool.available(),
        pool.capacity(),
        "every buffer back in its pool"
    );
}

on_all_rings!(
    surprise_removal_downs_the_port_and_holds_posted_buffers,
    released_device_downs_the_port_and_returns_every_buffer,
);
