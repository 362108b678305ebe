//! A virtio-net device that writes arbitrary bytes into the ring memory it shares with the
//! driver — a split ring's used ring, a packed ring's descriptors and event area — between
//! the driver's calls, after behaving for a while (frames in, frames out, bad `num_buffers`).
//!
//! Invariants: no panic, no access outside the shared memory (the ring accessors check every
//! offset; run with ASan to check the rest), every received frame within its buffer, and
//! every buffer back in its pool once the port is dropped.

#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice_pmd::mempool::{HugePagePolicy, PageSize};
use sluice_pmd::net::{NetPort, RxQueue, TxQueue};
use sluice_pmd::virtio::model::{ModelConfig, SoftVirtioNet};
use sluice_pmd::virtio::{PciTransport, VirtioConfig, VirtioPort, feature};
use sluice_pmd::{Batch, IdentityMapper, PktBuf, PktPool, PktPoolConfig};

const BUFFERS: u32 = 256;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn pool() -> PktPool {
    let mut c = PktPoolConfig::new("fuzz", BUFFERS);
    c.page_size = PageSize::Size4K;
    c.huge_pages = HugePagePolicy::Never;
    c.cache_size = 0;
    PktPool::new(&c, Arc::new(IdentityMapper)).expect("a 4 KiB-page pool")
}

fn model(u: &mut Unstructured<'_>) -> Result<ModelConfig> {
    let mut features = ModelConfig::default().features;
    for (f, on) in [
        (feature::RING_PACKED, u.arbitrary::<bool>()?),
        (feature::MRG_RXBUF, u.arbitrary::<bool>()?),
        (feature::EVENT_IDX, u.arbitrary::<bool>()?),
    ] {
        if on {
            features |= f;
        } else {
            features &= !f;
        }
    }
    Ok(ModelConfig {
        features,
        loopback: true,
        tx_out_of_order: u.arbitrary()?,
        ..ModelConfig::default()
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let pool = pool();
    {
        let dev = SoftVirtioNet::new(model(u)?);
        let size = 16 << u.int_in_range(0..=2)?;
        let cfg = VirtioConfig {
            name: "fuzz".into(),
            rx_descriptors: size,
            tx_descriptors: size,
            timeout: Duration::from_millis(100),
            dma_page: PageSize::Size4K,
            huge_pages: HugePagePolicy::Never,
            ..VirtioConfig::default()
        };
        let d = dev.clone();
        let port = PciTransport::new(
            "fuzz".into(),
            &dev.caps(),
            move |_| Ok(d.clone()),
            cfg.timeout,
        )
        .and_then(|t| VirtioPort::with_transport(t, &cfg, &pool, Arc::new(IdentityMapper)));
        let Ok(mut port) = port else {
            return Ok(());
        };
        let mut q = port.take_queues().expect("the queues, once");
        // Set once the device writes its own bytes into the rings: the model then no longer
        // walks them (it would trust what it finds), and the fuzzer is the device.
        let mut hostile = false;
        let r = (|| -> Result<()> {
            while !u.is_empty() {
                match u.int_in_range(0..=7)? {
                    0 => {
                        let mut got: Batch<PktBuf> = Batch::new();
                        q.rx[0].rx_burst(&mut got);
                        for p in got.iter() {
                            assert!(p.len() <= p.buf_len(), "a frame past its buffer");
                        }
                    }
                    1 => {
                        let n: usize = u.int_in_range(1..=8)?;
                        let len: usize = u.int_in_range(14..=1514)?;
                        let mut b: Batch<PktBuf> = Batch::new();
                        for _ in 0..n {
                            let Some(mut p) = pool.alloc() else { break };
                            if p.append(len).is_some() {
                                let _ = b.push(p);
                            }
                        }
                        q.tx[0].tx_burst(&mut b);
                    }
                    2 => q.tx[0].reclaim(),
                    3 if !hostile => {
                        let len: usize = u.int_in_range(14..=5000)?;
                        dev.inject(0, &vec![0xa5; len]);
                    }
                    4 if !hostile => dev.step(),
                    5 => {
                        if !hostile {
                            hostile = true;
                            dev.set_auto(false);
                        }
                        let queue = u.int_in_range(0..=1)?;
                        let offset: u16 = u.arbitrary()?;
                        let len = u.int_in_range(1..=16)?;
                        let bytes = u.bytes(len)?;
                        dev.scribble(queue, usize::from(offset), bytes);
                    }
                    6 if !hostile => dev.set_num_buffers(u.arbitrary()?),
                    7 => {
                        q.rx[0].refill();
                        let _ = (q.rx[0].take_fault(), q.tx[0].take_fault());
                        let _ = (q.rx[0].skipped(), q.rx[0].is_broken(), q.tx[0].in_flight());
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        drop(q);
        drop(port);
        drop(dev);
        let _ = r;
    }
    assert_eq!(
        pool.available(),
        BUFFERS as usize,
        "buffers lost or doubled"
    );
    Ok(())
}
