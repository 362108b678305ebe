//! Bring-up: the handshake, feature negotiation, errors naming what is wrong, shutdown.

use super::*;
use crate::net::{LinkStatus, NetPort, RxQueue, TxQueue};
use crate::virtio::{CtrlCommand, RingAddrs, Transport};
use crate::virtio::{RingKind, VirtioError, feature, status};
use sluice_mempool::{Batch, PktBuf};

// Queue set-up against both engines: virtio-queue checks sizes, alignment and that the rings
// are in the device's memory.
on_all_rings!(
    handshake_accepts_the_poll_mode_set_and_reports_mac_and_link,
    queue_size_is_capped_at_the_device_maximum,
    receive_queues_are_notified_only_after_driver_ok,
);

fn handshake_accepts_the_poll_mode_set_and_reports_mac_and_link(engine: Rings) {
    let pool = pool(1024);
    let (dev, mut port) = open(model(engine), &cfg(64), &pool);
    let want = feature::VERSION_1
        | feature::MAC
        | feature::STATUS
        | feature::CTRL_VQ
        | feature::CTRL_RX
        | feature::MRG_RXBUF
        | feature::EVENT_IDX
        | feature::MQ;
    // Packed rings are taken whenever offered (the default asks for them).
    let (want, kind) = match engine {
        Rings::Packed => (want | feature::RING_PACKED, RingKind::Packed),
        Rings::Split(_) => (want, RingKind::Split),
    };
    assert_eq!(port.features(), want);
    assert_eq!(dev.driver_features(), want);
    assert_eq!(port.ring_kind(), kind);
    let s = dev.status();
    assert_eq!(
        s,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
    assert_eq!(port.info().mac.0, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(port.info().driver, "virtio");
    assert_eq!(port.link(), LinkStatus::Up { speed_mbps: None });
    dev.set_link(false);
    assert_eq!(port.link(), LinkStatus::Down);
    assert_eq!(dev.rx_mode(), (true, false));
    port.set_promiscuous(false).unwrap();
    port.set_all_multicast(true).unwrap();
    assert_eq!(dev.rx_mode(), (false, true));
    drop(port);
    assert_eq!(dev.status(), 0, "shutdown resets the device");
    assert_eq!(pool.available(), 1024, "every posted buffer is back");
}

#[test]
fn a_device_without_version_1_is_an_error_naming_it() {
    let pool = pool(256);
    let mc = ModelConfig {
        features: feature::MAC | feature::STATUS,
        ..ModelConfig::default()
    };
    let (dev, r) = try_open(mc, &cfg(64), &pool);
    let e = r.unwrap_err();
    assert!(
        matches!(e, Error::Virtio(VirtioError::FeatureMissing { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("VERSION_1"), "{e}");
    assert!(dev.status() & status::FAILED != 0, "FAILED written");
}

#[test]
fn access_platform_is_accepted_whenever_offered() {
    let pool = pool(256);
    let mc = ModelConfig {
        features: ModelConfig::default().features | feature::ACCESS_PLATFORM,
        insists_on: feature::ACCESS_PLATFORM,
        ..ModelConfig::default()
    };
    let mut c = cfg(64);
    c.features = feature::VERSION_1; // even when not asked for
    let (dev, port) = open(mc, &c, &pool);
    assert!(dev.driver_features() & feature::ACCESS_PLATFORM != 0);
    assert!(port.features() & feature::ACCESS_PLATFORM != 0);
}

#[test]
fn a_refused_feature_set_fails_with_the_features_named() {
    let pool = pool(256);
    // IN_ORDER: offered, insisted on, not something this driver takes on split rings.
    let in_order = feature::IN_ORDER;
    let mc = ModelConfig {
        features: ModelConfig::default().features | in_order,
        insists_on: in_order,
        ..ModelConfig::default()
    };
    let (dev, r) = try_open(mc, &cfg(64), &pool);
    let e = r.unwrap_err();
    assert!(
        matches!(e, Error::Virtio(VirtioError::FeaturesRefused { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("VERSION_1"), "{e}");
    assert!(dev.status() & status::FAILED != 0);
    assert_eq!(pool.available(), 256);
}

#[test]
fn a_device_insisting_on_packed_rings_gets_them_unless_the_user_opts_out() {
    let pool = pool(256);
    let mc = ModelConfig {
        features: ModelConfig::default().features | feature::RING_PACKED,
        insists_on: feature::RING_PACKED,
        ..ModelConfig::default()
    };
    let (dev, port) = open(mc.clone(), &cfg(64), &pool);
    assert_eq!(port.ring_kind(), RingKind::Packed);
    assert!(dev.driver_features() & feature::RING_PACKED != 0);
    drop(port);
    // Opting out: split rings asked for, which this device refuses.
    let mut c = cfg(64);
    c.features &= !feature::RING_PACKED;
    let (dev, r) = try_open(mc, &c, &pool);
    let e = r.unwrap_err();
    assert!(
        matches!(e, Error::Virtio(VirtioError::FeaturesRefused { .. })),
        "{e}"
    );
    assert!(!e.to_string().contains("RING_PACKED"), "{e}");
    assert!(dev.status() & status::FAILED != 0);
    // Offered, not insisted on: the user's choice stands.
    let mc = ModelConfig {
        features: ModelConfig::default().features | feature::RING_PACKED,
        ..ModelConfig::default()
    };
    let (_dev, port) = open(mc, &c, &pool);
    assert_eq!(port.ring_kind(), RingKind::Split);
    drop(port);
    assert_eq!(pool.available(), 256);
}

#[test]
fn a_reset_that_never_completes_times_out_naming_the_register() {
    let pool = pool(256);
    let mc = ModelConfig {
        stuck_reset: true,
        ..ModelConfig::default()
    };
    let (_dev, r) = try_open(mc, &cfg(64), &pool);
    let e = r.unwrap_err();
    assert!(
        matches!(e, Error::Virtio(VirtioError::Timeout { value: 1, .. })),
        "{e}"
    );
    assert!(
        e.to_string().contains("device_status (waiting for 0"),
        "{e}"
    );
}

#[test]
fn more_queue_pairs_than_the_device_has_is_an_error() {
    let pool = pool(1024);
    let mut c = cfg(64);
    c.queues = 8;
    let (dev, r) = try_open(ModelConfig::default(), &c, &pool);
    let e = r.unwrap_err();
    assert!(
        e.to_string()
            .contains("8 queue pairs asked for; the device has 4"),
        "{e}"
    );
    assert_eq!(dev.status(), 0, "reset on the error path");
    let mc = ModelConfig {
        features: ModelConfig::default().features & !feature::MQ,
        ..ModelConfig::default()
    };
    c.queues = 2;
    let (_dev, r) = try_open(mc, &c, &pool);
    assert!(r.unwrap_err().to_string().contains("MQ not offered"));
    assert_eq!(pool.available(), 1024);
}

fn queue_size_is_capped_at_the_device_maximum(engine: Rings) {
    let pool = pool(2048);
    let mc = ModelConfig {
        queue_max: 128,
        ..model(engine)
    };
    let (_dev, mut port) = open(mc, &cfg(1024), &pool);
    let q = port.take_queues().unwrap();
    assert_eq!(q.rx[0].posted(), 128);
}

/// virtio 1.2 §3.1.1: no notification before DRIVER_OK. The receive rings are filled before
/// it, so each receive queue is notified once DRIVER_OK is set, with or without EVENT_IDX.
fn receive_queues_are_notified_only_after_driver_ok(engine: Rings) {
    for event_idx in [true, false] {
        let pool = pool(1024);
        // Without CTRL_RX the only control command is the queue pairs' (one notify).
        let mut mc = model(engine);
        mc.features &= !feature::CTRL_RX;
        if !event_idx {
            mc.features &= !feature::EVENT_IDX;
        }
        let mut c = cfg(64);
        c.queues = 2;
        let (dev, port) = open(mc, &c, &pool);
        let stats = dev.stats();
        assert_eq!(stats.early_notifies, 0, "event_idx {event_idx}");
        assert_eq!(stats.notifies, 3, "two receive queues, one control command");
        drop(port);
        assert_eq!(pool.available(), 1024);
    }
}

#[test]
fn a_refused_control_command_is_an_error_naming_class_and_command() {
    let pool = pool(256);
    // CTRL_RX not offered: the port has a control queue, but the device answers ERR.
    let mc = ModelConfig {
        features: ModelConfig::default().features & !feature::CTRL_RX,
        ..ModelConfig::default()
    };
    let (_dev, mut port) = open(mc, &cfg(64), &pool);
    let e = port.set_promiscuous(false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "virtio model: control command class 0 command 0: ack 0x01 (1 = error)"
    );
    // Without CTRL_VQ there is no control queue at all.
    let mc = ModelConfig {
        features: feature::VERSION_1 | feature::MAC,
        ..ModelConfig::default()
    };
    let (_dev, mut port) = open(mc, &cfg(64), &pool);
    assert!(
        port.set_all_multicast(true)
            .unwrap_err()
            .to_string()
            .contains("CTRL_VQ was not negotiated")
    );
}

#[test]
fn virtio_errors_name_the_device_and_keep_their_source() {
    use std::error::Error as _;
    let e = Error::from(VirtioError::FeatureMissing {
        device: "0000:00:02.0".into(),
        missing: feature::VERSION_1 | 1 << 40,
        offered: 0x30bf_8024,
    });
    assert_eq!(
        e.to_string(),
        "virtio 0000:00:02.0: required feature(s) VERSION_1|bit 40 not offered (device offers \
         0x0000000030bf8024)"
    );
    let e = Error::from(VirtioError::Dma {
        what: "0000:00:02.0 queue 1".into(),
        len: 8192,
        source: Box::new(sluice_mempool::Error::Mmap {
            page: sluice_mempool::PageSize::Size4K,
            bytes: 8192,
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        }),
    });
    assert!(e.source().is_some());
    assert!(e.to_string().contains("for 0000:00:02.0 queue 1"), "{e}");
}

/// The PCI transport with the control queue taken over, as a vhost-user frontend does:
/// commands are recorded here and no control virtqueue is set up.
struct LocalControl {
    pci: PciTransport<SoftVirtioNet>,
    commands: std::sync::Mutex<Vec<CtrlCommand>>,
}

impl Transport for LocalControl {
    type Doorbell = <PciTransport<SoftVirtioNet> as Transport>::Doorbell;
    fn device(&self) -> &str {
        self.pci.device()
    }
    fn reset(&self) -> Result<(), Error> {
        self.pci.reset()
    }
    fn status(&self) -> Result<u8, Error> {
        self.pci.status()
    }
    fn set_status(&self, status: u8) -> Result<(), Error> {
        self.pci.set_status(status)
    }
    fn device_features(&self) -> Result<u64, Error> {
        self.pci.device_features()
    }
    fn set_driver_features(&self, features: u64) -> Result<(), Error> {
        self.pci.set_driver_features(features)
    }
    fn max_queue_size(&self, queue: u16) -> Result<u16, Error> {
        self.pci.max_queue_size(queue)
    }
    fn setup_queue(
        &self,
        queue: u16,
        size: u16,
        rings: RingAddrs,
    ) -> Result<Self::Doorbell, Error> {
        self.pci.setup_queue(queue, size, rings)
    }
    fn mac(&self) -> Result<[u8; 6], Error> {
        self.pci.mac()
    }
    fn link_up(&self) -> Result<bool, Error> {
        self.pci.link_up()
    }
    fn max_queue_pairs(&self) -> Result<u16, Error> {
        self.pci.max_queue_pairs()
    }
    fn device_control_queue(&self) -> bool {
        false
    }
    fn control(&self, command: CtrlCommand) -> Result<(), Error> {
        self.commands.lock().unwrap().push(command);
        Ok(())
    }
}

#[test]
fn a_transport_without_a_device_control_queue_executes_the_commands_itself() {
    let pool = pool(1024);
    let dev = SoftVirtioNet::new(ModelConfig {
        loopback: true,
        ..ModelConfig::default()
    });
    let mut c = cfg(64);
    c.queues = 2;
    let d = dev.clone();
    let pci = PciTransport::new(
        "local".into(),
        &dev.caps(),
        move |_| Ok(d.clone()),
        c.timeout,
    )
    .unwrap();
    let t = LocalControl {
        pci,
        commands: Default::default(),
    };
    let mut port = VirtioPort::with_transport(t, &c, &pool, Arc::new(IdentityMapper)).unwrap();
    assert!(port.features() & feature::CTRL_VQ != 0);
    port.set_all_multicast(true).unwrap();
    let sent = port.shared().transport().commands.lock().unwrap().clone();
    assert_eq!(
        sent,
        [
            CtrlCommand::QueuePairs(2),
            CtrlCommand::Promiscuous(true),
            CtrlCommand::AllMulticast(true)
        ]
    );
    assert_eq!(dev.stats().ctrl_commands, 0, "nothing reached the device");
    assert_eq!(dev.active_pairs(), 1);
    // The datapath does not care where the commands went.
    let mut q = port.take_queues().unwrap();
    let mut out: Batch<PktBuf> = Batch::new();
    let mut p = pool.alloc().unwrap();
    p.extend_from_slice(&frame(1, 64)).unwrap();
    out.push(p).unwrap();
    assert_eq!(q.tx[1].tx_burst(&mut out), 1);
    let mut got = Batch::<PktBuf>::new();
    assert_eq!(q.rx[1].rx_burst(&mut got), 1);
    assert_eq!(got[0].data(), &frame(1, 64)[..]);
    drop((got, q, port));
    assert_eq!(dev.status(), 0, "reset through the wrapping transport");
    assert_eq!(pool.available(), 1024);
}
