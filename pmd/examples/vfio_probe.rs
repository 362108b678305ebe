//! Opens PCI devices through VFIO and reads what the drivers will build on: IDs from config
//! space, a register from a BAR, and a DMA mapping through the container.
//!
//! ```text
//! vfio_probe open ADDR...                  # all devices in one container
//! vfio_probe expect-error not-bound ADDR   # succeeds if VFIO refuses: still on its driver
//! vfio_probe expect-error not-viable ADDR  # succeeds if VFIO refuses: group not viable
//! ```
//!
//! For a modern virtio device it finds the common configuration through the vendor
//! capabilities and reads `device_feature`; for an NVMe controller it reads `CAP` and `VS`
//! from BAR0. The QEMU end-to-end test (`bench/qemu/e2e-vfio.sh`) runs it in the guest.

use std::process::ExitCode;
use std::sync::Arc;

use sluice_mempool::{DmaRegion, HugePagePolicy, PageSize};
use sluice_pmd::Error;
use sluice_pmd::pci::caps::{self, VirtioCfgType};
use sluice_pmd::pci::{ConfigSpace, PciAddr, Sysfs, reg};
use sluice_pmd::regs::Registers;
use sluice_pmd::vfio::{Container, Device, IommuMode, VfioError};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("open") => open_all(&args[1..]),
        Some("expect-error") if args.len() == 3 => expect_error(&args[1], &args[2]),
        _ => Err("usage: vfio_probe open ADDR... | expect-error not-bound|not-viable ADDR".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfio_probe: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn open_all(addrs: &[String]) -> Result<()> {
    if addrs.is_empty() {
        return Err("no devices given".into());
    }
    let sysfs = Sysfs::system();
    let container = Container::new(IommuMode::Type1v2)?;
    let mut devices = Vec::new();
    for a in addrs {
        let addr: PciAddr = a.parse()?;
        let dev = Device::open(&container, &sysfs, addr)?;
        probe(&dev)?;
        devices.push(dev);
    }
    if let Some(info) = container.iommu_info() {
        let ranges: Vec<String> = info
            .ranges
            .iter()
            .map(|r| format!("{:#x}..={:#x}", r.start, r.end))
            .collect();
        println!(
            "container: {} device(s), IOMMU page sizes {:#x}, IOVA ranges [{}], DMA mappings available {}",
            devices.len(),
            info.iova_pgsizes,
            ranges.join(", "),
            info.dma_avail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
    dma_round_trip(&container)?;
    // Devices drop here, then the container's groups, then the container.
    Ok(())
}

fn probe(dev: &Device) -> Result<()> {
    let cfg = dev.config();
    let vendor = cfg.read16(reg::VENDOR_ID)?;
    let device = cfg.read16(reg::DEVICE_ID)?;
    let class = cfg.read32(reg::REVISION)? >> 8;
    // Reset first where VFIO offers one (it clears COMMAND), then turn on memory decoding and
    // bus mastering.
    if dev.can_reset() {
        dev.reset()?;
    }
    let command = dev.enable_bus_master()?;
    println!(
        "{}: {vendor:04x}:{device:04x} class {class:06x}, config space {} bytes, COMMAND {command:#06x} \
         (memory + bus master), function reset {}",
        dev.addr(),
        cfg.size(),
        if dev.can_reset() {
            "offered and done"
        } else {
            "not offered"
        }
    );
    match (vendor, device, class) {
        (0x1af4, 0x1040..=0x107f, _) => probe_virtio(dev),
        (_, _, 0x010802) => probe_nvme(dev),
        _ => Ok(()),
    }
}

/// virtio 1.2 §4.1.4.3: the common configuration; `device_feature_select` at 0x00 picks
/// which 32 bits `device_feature` at 0x04 shows.
fn probe_virtio(dev: &Device) -> Result<()> {
    let vcaps = caps::virtio_caps(&dev.config())?;
    let common = vcaps
        .iter()
        .find(|c| c.cfg_type == VirtioCfgType::Common)
        .ok_or_else(|| format!("{}: no virtio common configuration capability", dev.addr()))?;
    let bar = dev.map_bar(common.bar)?;
    let base = common.offset as usize;
    let mut features = 0u64;
    for half in 0..2u32 {
        bar.write32(base, half)?;
        features |= u64::from(bar.read32(base + 4)?) << (32 * half);
    }
    let bars: Vec<String> = vcaps
        .iter()
        .map(|c| format!("{:?}@BAR{}+{:#x}", c.cfg_type, c.bar, c.offset))
        .collect();
    println!(
        "{}: virtio caps [{}]; BAR{} is {:#x} bytes; device_feature {features:#018x} \
         (VERSION_1 {}, ACCESS_PLATFORM {})",
        dev.addr(),
        bars.join(", "),
        common.bar,
        bar.len(),
        yes(features & 1 << 32 != 0),
        yes(features & 1 << 33 != 0),
    );
    if features & 1 << 32 == 0 {
        return Err(format!(
            "{}: VERSION_1 not offered: not a modern virtio device",
            dev.addr()
        )
        .into());
    }
    Ok(())
}

/// NVMe 1.4 §3.1: CAP at 0x00 (64 bits, low half first), VS at 0x08.
fn probe_nvme(dev: &Device) -> Result<()> {
    let bar0 = dev.map_bar(0)?;
    let cap = bar0.read64(0x00)?;
    let vs = bar0.read32(0x08)?;
    println!(
        "{}: NVMe BAR0 {:#x} bytes; CAP {cap:#018x} (MQES {}, TO {} ms, DSTRD {}, CSS {:#x}, \
         MPSMIN {} KiB); VS {:#010x} = {}.{}.{}",
        dev.addr(),
        bar0.len(),
        (cap & 0xffff) + 1,
        ((cap >> 24) & 0xff) * 500,
        (cap >> 32) & 0xf,
        (cap >> 37) & 0xff,
        4u64 << ((cap >> 48) & 0xf),
        vs,
        vs >> 16,
        (vs >> 8) & 0xff,
        vs & 0xff
    );
    if vs >> 16 == 0 || cap == u64::MAX {
        return Err(format!("{}: implausible NVMe registers", dev.addr()).into());
    }
    Ok(())
}

/// Maps a hugepage region through the container, checks the IOMMU holds exactly it, and
/// unmaps it by dropping it.
fn dma_round_trip(container: &Arc<Container>) -> Result<()> {
    let region = DmaRegion::allocate(
        4 << 20,
        PageSize::Size2M,
        HugePagePolicy::Prefer,
        container.clone(),
    )?;
    let va = region.as_ptr().as_ptr() as u64;
    let iova = region.iova_at(0);
    println!(
        "DMA: {} KiB of {} pages at VA {va:#x} mapped by {} at IOVA {:#x}; IOMMU mappings {:x?}",
        region.len() >> 10,
        region.page_size(),
        region.mapper_name(),
        iova.0,
        container.mappings()
    );
    if iova.0 != va || container.mappings() != [(va, region.len() as u64)] {
        return Err("the mapping is not IOVA = VA over the whole region".into());
    }
    drop(region);
    println!("DMA: unmapped; IOMMU mappings {:x?}", container.mappings());
    if !container.mappings().is_empty() {
        return Err("the region was not unmapped".into());
    }
    Ok(())
}

fn expect_error(kind: &str, addr: &str) -> Result<()> {
    let addr: PciAddr = addr.parse()?;
    let container = Container::new(IommuMode::Type1v2)?;
    match (kind, Device::open(&container, &Sysfs::system(), addr)) {
        (_, Ok(_)) => Err(format!("{addr}: opened, but {kind} was expected").into()),
        ("not-bound", Err(e @ Error::Vfio(VfioError::NotBoundToVfio { .. })))
        | ("not-viable", Err(e @ Error::Vfio(VfioError::GroupNotViable { .. }))) => {
            println!("{addr}: refused as expected: {e}");
            Ok(())
        }
        (_, Err(e)) => Err(format!("{addr}: expected {kind}, got: {e}").into()),
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
