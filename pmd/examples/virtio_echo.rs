//! A small service that embeds the virtio-net driver without the Sluice runtime: it opens a
//! virtio port from its PCI address (bound to vfio-pci), answers ARP requests for its IPv4
//! address and echoes UDP datagrams back to their sender, from one polling thread.
//!
//! ```text
//! virtio_echo ADDR IPV4 [SECONDS]     # e.g. virtio_echo 00:02.0 10.0.0.2 30
//! ```
//!
//! It runs until SIGINT or SIGTERM (or for SECONDS), then prints what it answered. The line
//! `virtio_echo: ADDR MAC IPV4, link ..., ... rings` says the port is open and polled.
//!
//! The call sequence is the crate's (`sluice_pmd::virtio` docs): a VFIO container, a packet
//! pool, `VirtioPort::open`, `take_queues`, then `rx_burst`/`tx_burst` on the queue handles.
//! Frames are answered in place (zero copy): the received buffer is rewritten and sent back.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_pmd::mempool::{HugePagePolicy, IovaMapper, PagemapMapper};
use sluice_pmd::net::{MacAddr, NetPort, RxQueue, TxQueue};
use sluice_pmd::pci::{PciAddr, Sysfs};
use sluice_pmd::vfio::{Container, IommuMode};
use sluice_pmd::virtio::{VirtioConfig, VirtioPort};
use sluice_pmd::{Batch, IdentityMapper, PktBuf, PktPool, PktPoolConfig};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virtio_echo: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let (Some(addr), Some(ip)) = (args.first(), args.get(1)) else {
        return Err("usage: virtio_echo ADDR IPV4 [SECONDS]".into());
    };
    let ip: Ipv4Addr = ip.parse()?;
    let secs: Option<u64> = args.get(2).map(|s| s.parse()).transpose()?;
    let addr: PciAddr = addr.parse()?;
    // A device whose VFIO group is noiommu-N (VFIO's no-IOMMU mode) sees physical
    // addresses: a no-IOMMU container, and a pool on hugepages with IOVA = PA.
    let noiommu = Sysfs::system()
        .iommu_group(addr)?
        .is_some_and(|g| g.noiommu);
    let mut pool_cfg = PktPoolConfig::new("echo", 2048);
    let (container, mapper): (_, Arc<dyn IovaMapper>) = if noiommu {
        pool_cfg.huge_pages = HugePagePolicy::Require;
        (Container::new(IommuMode::NoIommu)?, Arc::new(PagemapMapper))
    } else {
        (
            Container::new(IommuMode::Type1v2)?,
            Arc::new(IdentityMapper),
        )
    };
    let pool = PktPool::new(&pool_cfg, mapper)?;
    let cfg = VirtioConfig {
        name: "echo".into(),
        promiscuous: false,
        ..VirtioConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut port = VirtioPort::open(addr, &cfg, &pool, &container)?;
    let mac = port.info().mac;
    println!(
        "virtio_echo: {addr} {mac} {ip}, link {}, {} rings",
        port.link(),
        port.ring_kind()
    );
    let mut q = port.take_queues().ok_or("queues already taken")?;
    let (rx, tx) = (&mut q.rx[0], &mut q.tx[0]);
    // No end, or one too far to represent: until a signal.
    let end = secs.and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
    let (mut answered, mut ignored) = (0u64, 0u64);
    let mut burst: Batch<PktBuf> = Batch::new();
    while !stop.load(Ordering::Relaxed) && end.is_none_or(|e| Instant::now() < e) {
        if rx.rx_burst(&mut burst) == 0 {
            std::hint::spin_loop();
            continue;
        }
        let mut out: Batch<PktBuf> = Batch::new();
        for mut pkt in burst.drain() {
            if answer(pkt.data_mut(), mac, ip) {
                let _ = out.push(pkt);
                answered += 1;
            } else {
                ignored += 1;
            }
        }
        tx.tx_burst(&mut out);
        // What the ring did not take is dropped here (back to the pool).
    }
    println!("virtio_echo: answered {answered}, ignored {ignored}");
    Ok(())
}

/// Rewrites `f` in place into the answer to it; false if it is not for us.
fn answer(f: &mut [u8], mac: MacAddr, ip: Ipv4Addr) -> bool {
    if f.len() < 42 {
        return false;
    }
    let ip = ip.octets();
    match u16::from_be_bytes([f[12], f[13]]) {
        // ARP request (htype 1, ptype IPv4, oper 1) for our address.
        0x0806 if f[20..22] == [0, 1] && f[38..42] == ip => {
            let (sha, spa): ([u8; 6], [u8; 4]) = (
                f[22..28].try_into().unwrap_or_default(),
                f[28..32].try_into().unwrap_or_default(),
            );
            f[0..6].copy_from_slice(&sha);
            f[6..12].copy_from_slice(&mac.0);
            f[21] = 2; // reply
            f[22..28].copy_from_slice(&mac.0);
            f[28..32].copy_from_slice(&ip);
            f[32..38].copy_from_slice(&sha);
            f[38..42].copy_from_slice(&spa);
            true
        }
        // IPv4 UDP to our address: swap Ethernet, IP and UDP addresses. Checksums are sums
        // of 16-bit words, so swapping words leaves them valid.
        0x0800 if f[14] >> 4 == 4 && f[23] == 17 && f[30..34] == ip => {
            let ihl = usize::from(f[14] & 0xf) * 4;
            if f.len() < 14 + ihl + 8 {
                return false;
            }
            let src: [u8; 6] = f[6..12].try_into().unwrap_or_default();
            f[0..6].copy_from_slice(&src);
            f[6..12].copy_from_slice(&mac.0);
            for i in 0..4 {
                f.swap(26 + i, 30 + i);
            }
            let u = 14 + ihl;
            for i in 0..2 {
                f.swap(u + i, u + 2 + i);
            }
            true
        }
        _ => false,
    }
}
