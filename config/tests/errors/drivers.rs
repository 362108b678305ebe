//! Drivers and addresses.

use super::*;

#[test]
fn invalid_pci_address() {
    let text = r#"
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
[[ports]]
name = "a"
driver = "virtio"
pci = "00:20.0"
"#;
    assert_eq!(
        error(text),
        "fwd.toml: ports[0].pci: \"00:20.0\" is not a PCI address like 0000:00:10.0 or \
         00:10.0 (device 20 is over 1f)"
    );
}

#[test]
fn virtio_needs_pci_and_af_xdp_needs_interface() {
    let port = |driver: &str| {
        format!(
            "[[mempools]]\nname = \"p\"\nbuffers = 8191\nbuffer_size = 2048\n\
             [[ports]]\nname = \"a\"\ndriver = \"{driver}\"\n"
        )
    };
    assert_rejected(
        &port("virtio"),
        "fwd.toml: ports[0].pci: missing: virtio ports need pci",
        &[],
    );
    assert_rejected(
        &port("af_xdp"),
        "fwd.toml: ports[0].interface: missing: af_xdp ports need interface",
        &[],
    );
    assert_rejected(
        &port("virtio-user"),
        "fwd.toml: ports[0].path: missing: virtio-user ports need path, \
         e.g. path = \"/run/sluice/vhost-net0.sock\"",
        &[],
    );
}

#[test]
fn same_device_twice() {
    let two = |driver: &str, field: &str, a: &str, b: &str| {
        format!(
            "[[mempools]]\nname = \"p\"\nbuffers = 8191\nbuffer_size = 2048\n\
             [[ports]]\nname = \"a\"\ndriver = \"{driver}\"\n{field} = \"{a}\"\nrx_descriptors = 64\n\
             [[ports]]\nname = \"b\"\ndriver = \"{driver}\"\n{field} = \"{b}\"\nrx_descriptors = 64\n"
        )
    };
    assert_eq!(
        error(&two("virtio", "pci", "00:02.0", "0000:00:02.0")),
        "fwd.toml: ports[1].pci: 0000:00:02.0 is already used by a"
    );
    assert_eq!(
        error(&two("virtio-user", "path", "/run/v.sock", "/run/v.sock")),
        "fwd.toml: ports[1].path: /run/v.sock is already used by a"
    );
    assert_rejected(
        &two("virtio-user", "path", "/run/v.sock", &"x".repeat(108)),
        "fwd.toml: ports[1].path: ",
        &["is not a unix socket path (1 to 107 bytes, no NUL)"],
    );
    assert_eq!(
        error(&two("af_xdp", "interface", "veth0", "veth0")),
        "fwd.toml: ports[1].interface: \"veth0\" is already used by a"
    );
    assert_rejected(
        &two("af_xdp", "interface", "veth0", "a-very-long-interface"),
        "fwd.toml: ports[1].interface: \"a-very-long-interface\" is not a Linux interface name",
        &[],
    );
}

#[test]
fn invalid_mac_strings() {
    for (mac, message) in [
        ("02:00:00:00:01", "\"02:00:00:00:01\" is not a MAC address"),
        (
            "02:00:00:00:00:zz",
            "\"02:00:00:00:00:zz\" is not a MAC address",
        ),
        (
            "01:00:5e:00:00:01",
            "01:00:5e:00:00:01 is not a unicast address",
        ),
        (
            "00:00:00:00:00:00",
            "00:00:00:00:00:00 is not a unicast address",
        ),
    ] {
        let text = edit(&[(
            "queues = 4\n\n[[ports]]",
            &format!("queues = 4\nmac = \"{mac}\"\n\n[[ports]]"),
        )]);
        assert_rejected(&text, &format!("fwd.toml: ports[0].mac: {message}"), &[]);
    }
}
