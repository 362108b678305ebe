//! Bring-up, queue creation and shutdown, and controllers that fail them.

use super::*;

#[test]
fn bring_up_identifies_negotiates_and_shuts_down() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    assert_eq!(ctrl.info().model, "Sluice soft NVMe");
    assert_eq!(ctrl.info().serial, "SLUICE0001");
    assert_eq!(ctrl.namespaces().len(), 1);
    let ns = ctrl.namespaces()[0];
    assert_eq!((ns.nsid, ns.blocks, ns.block_size), (1, 8192, 512));
    assert_eq!(ctrl.io_queues_granted(), 2);
    assert_eq!(ctrl.max_transfer(), 512 << 10, "MDTS 7 at 4 KiB pages");
    assert!(ctrl.shadow_doorbells() && dev.doorbell_buffer_enabled());
    let a = ctrl.create_io_qpair(1).unwrap();
    let b = ctrl.create_io_qpair(1).unwrap();
    assert_eq!((a.qid(), b.qid()), (1, 2));
    let e = ctrl.create_io_qpair(1).unwrap_err();
    assert!(
        e.to_string()
            .contains("all 2 granted I/O queue pairs are in use"),
        "{e}"
    );
    assert!(ctrl.create_io_qpair(7).is_err(), "no namespace 7");
    assert_eq!(dev.io_queues(), 2);
    ctrl.delete_io_qpair(a).unwrap();
    assert_eq!(dev.io_queues(), 1);
    let a = ctrl.create_io_qpair(1).unwrap();
    assert_eq!(a.qid(), 1, "the freed qid is reused");
    ctrl.shutdown().unwrap();
    assert_eq!(dev.io_queues(), 0);
    assert_eq!(dev.read32(regs::CSTS).unwrap() & regs::CSTS_RDY, 0);
    drop((a, b));
}

#[test]
fn fatal_status_on_enable_names_csts() {
    let dev = Arc::new(SoftNvme::new(ModelConfig::default()));
    dev.faults(|f| f.fatal_on_enable = true);
    let e = Controller::enable(dev, Arc::new(IdentityMapper), config()).unwrap_err();
    let Error::Nvme(NvmeError::Fatal {
        register, value, ..
    }) = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (*register, value & regs::CSTS_CFS),
        ("CSTS", regs::CSTS_CFS)
    );
    assert!(e.to_string().contains("CSTS = 0x00000002"), "{e}");
}

#[test]
fn fatal_status_during_admin_command() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    ctrl.check_health().unwrap();
    dev.set_fatal();
    let e = ctrl.check_health().unwrap_err();
    assert!(e.to_string().contains("CSTS = 0x00000003"), "{e}");
    let e = ctrl.create_io_qpair(1).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Nvme(NvmeError::Fatal {
                register: "CSTS",
                ..
            })
        ),
        "{e}"
    );
}

#[test]
fn controller_that_never_becomes_ready_times_out_naming_csts() {
    let dev = Arc::new(SoftNvme::new(ModelConfig {
        timeout_units: 1,
        ..ModelConfig::default()
    }));
    dev.faults(|f| f.never_ready = true);
    let start = Instant::now();
    let e = Controller::enable(dev, Arc::new(IdentityMapper), config()).unwrap_err();
    let waited = start.elapsed();
    let Error::Nvme(NvmeError::Timeout {
        register,
        value,
        waited_ms,
        ..
    }) = &e
    else {
        panic!("{e}")
    };
    assert_eq!((*register, *value), ("CSTS", 0));
    assert!(
        *waited_ms >= 500 && waited < Duration::from_secs(3),
        "CAP.TO = 500 ms bounds it"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "NVMe: CSTS = 0x00000000 after {waited_ms} ms waiting for RDY = 1 after CC.EN = 1; \
             the controller is hung or gone: reset the device"
        )
    );
}

#[test]
fn shutdown_that_never_completes_times_out_naming_csts() {
    let cfg = ControllerConfig {
        shutdown_timeout: Duration::from_millis(50),
        ..config()
    };
    let (dev, ctrl) = bring_up(ModelConfig::default(), cfg);
    dev.faults(|f| f.ignore_shutdown = true);
    let e = ctrl.shutdown().unwrap_err();
    assert!(e.to_string().contains("SHST = 10"), "{e}");
    assert_eq!(
        dev.read32(regs::CSTS).unwrap() & regs::CSTS_RDY,
        0,
        "still disabled after"
    );
}
