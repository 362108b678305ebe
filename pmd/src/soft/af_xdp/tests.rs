//! Port-level checks that need no kernel: configuration validation and sysfs parsing.

use super::*;

#[test]
fn macs_parse_from_sysfs_text() {
    assert_eq!(
        parse_mac("02:51:00:0a:ff:10"),
        Some(MacAddr([0x02, 0x51, 0x00, 0x0a, 0xff, 0x10]))
    );
    for bad in [
        "",
        "02:51:00:0a:ff",
        "02:51:00:0a:ff:10:11",
        "zz:51:00:0a:ff:10",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad:?}");
    }
}

#[test]
fn bad_shapes_are_refused_with_the_value() {
    let ok = AfXdpConfig::new("veth0");
    assert!(validate("p", &ok).is_ok());
    let cases = [
        (
            AfXdpConfig {
                queues: 0,
                ..ok.clone()
            },
            "queues",
        ),
        (
            AfXdpConfig {
                rx_descs: 1000,
                ..ok.clone()
            },
            "1000",
        ),
        (
            AfXdpConfig {
                tx_descs: 32,
                ..ok.clone()
            },
            "32",
        ),
        (
            AfXdpConfig {
                rx_descs: 1 << 17,
                ..ok.clone()
            },
            "131072",
        ),
    ];
    for (cfg, needle) in cases {
        let e = validate("p", &cfg).unwrap_err().to_string();
        assert!(
            e.starts_with("port p: invalid") && e.contains(needle),
            "{e}"
        );
    }
}

#[test]
fn min_chunks_covers_fill_and_tx_rings_per_queue() {
    let cfg = AfXdpConfig {
        queues: 2,
        rx_descs: 512,
        tx_descs: 256,
        ..AfXdpConfig::new("veth0")
    };
    assert_eq!(cfg.min_chunks(), 2 * (2 * 512 + 256 + 64));
}

#[test]
fn errors_name_the_interface_and_keep_the_errno() {
    let e = AfXdpError::Memlock {
        interface: "veth0".into(),
        bytes: 4 << 20,
        source: std::io::Error::from_raw_os_error(libc::ENOBUFS),
    };
    let msg = e.to_string();
    assert!(
        msg.contains("veth0") && msg.contains("RLIMIT_MEMLOCK"),
        "{msg}"
    );
    let src = std::error::Error::source(&e).unwrap().to_string();
    assert!(src.contains("No buffer space"), "{src}");
    let e = AfXdpError::QueueOutOfRange {
        interface: "veth0".into(),
        queue: 3,
        available: 2,
    };
    assert!(
        e.to_string()
            .contains("queue 3 is out of range: the interface has 2")
    );
}

#[test]
fn program_errors_say_what_holds_the_interface_or_what_the_verifier_said() {
    let e = AfXdpError::ProgramAttached {
        interface: "veth0".into(),
        step: "attach the XDP program",
        source: std::io::Error::from_raw_os_error(libc::EBUSY),
    };
    assert_eq!(
        e.to_string(),
        "veth0: cannot attach the XDP program (an XDP program is already attached, by another \
         AF_XDP port or program: stop it, or `ip link set dev veth0 xdp off`)"
    );
    let e = AfXdpError::Program {
        interface: "veth0".into(),
        step: "load the XDP program",
        verifier_log: Some("R0 !read_ok".into()),
        source: std::io::Error::from_raw_os_error(libc::EACCES),
    };
    assert_eq!(
        e.to_string(),
        "veth0: cannot load the XDP program (verifier: R0 !read_ok)"
    );
    let e = AfXdpError::Program {
        interface: "veth0".into(),
        step: "load the XDP program",
        verifier_log: None,
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    };
    assert_eq!(e.to_string(), "veth0: cannot load the XDP program");
}
