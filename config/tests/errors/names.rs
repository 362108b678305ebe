//! Names and references.

use super::*;

#[test]
fn duplicate_port_name() {
    let text = edit(&[("name = \"port1\"", "name = \"port0\"")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[1].name: \"port0\" is already the name of ports[0]"
    );
}

#[test]
fn duplicate_mempool_name() {
    let text = format!("[[mempools]]\nname = \"pkt\"\nbuffers = 10\nbuffer_size = 64\n{BASE}");
    assert_eq!(
        error(&text),
        "fwd.toml: mempools[1].name: \"pkt\" is already the name of mempools[0]"
    );
}

#[test]
fn port_name_with_a_slash() {
    let text = edit(&[("name = \"port0\"", "name = \"port/0\"")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[0].name: \"port/0\" is not a valid name",
        &[],
    );
}

#[test]
fn unknown_peer() {
    let text = edit(&[("peer = \"port1\"", "peer = \"port9\"")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].peer: \"port9\" is not a port (ports: port0, port1)"
    );
}

#[test]
fn ring_port_without_peer() {
    let text = edit(&[("peer = \"port1\"\n", "")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[0].peer: missing: ring ports need peer",
        &[],
    );
}

#[test]
fn port_is_not_its_own_peer() {
    let text = edit(&[("peer = \"port1\"", "peer = \"port0\"")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].peer: port0 cannot be its own peer"
    );
}

#[test]
fn ring_peers_must_be_mutual() {
    let text = format!(
        "{BASE}\n[[ports]]\nname = \"port2\"\ndriver = \"ring\"\npeer = \"port0\"\nqueues = 4\n"
    );
    assert_eq!(
        error(&text),
        "fwd.toml: ports[2].peer: port0's peer is port1, not port2: ring peers must name each other"
    );
}

#[test]
fn ring_peer_must_be_a_ring_port() {
    let text = edit(&[(
        "driver = \"ring\"\npeer = \"port0\"",
        "driver = \"af_xdp\"\ninterface = \"veth0\"",
    )]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].peer: port1 is not a ring port: a ring port's peer must be one"
    );
}

#[test]
fn ring_peers_have_equal_queue_counts() {
    let text = edit(&[("queues = 4\n\n[[lcores]]", "queues = 2\n\n[[lcores]]")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[0].queues: 4 differs from peer port1's 2",
        &[],
    );
}

#[test]
fn driver_specific_keys_are_rejected_on_other_drivers() {
    let text = edit(&[("peer = \"port1\"", "peer = \"port1\"\npci = \"00:10.0\"")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].pci: unknown field `pci`, expected one of `name`, `peer`, `queues`, \
         `rx_descriptors`, `tx_descriptors`, `mempool`, `mac` for driver = \"ring\" \
         (line 11, column 1)"
    );
}

#[test]
fn every_driver_rejects_the_keys_of_the_others() {
    // A port of `driver` with one key of another driver, on line 8 of the text.
    let port = |driver: &str, own: &str, foreign: &str| {
        format!(
            "[[mempools]]\nname = \"p\"\nbuffers = 8191\nbuffer_size = 2048\n\
             [[ports]]\nname = \"a\"\ndriver = \"{driver}\"\n{foreign}\n{own}\n"
        )
    };
    let ring = "peer = \"b\"";
    let xdp = "interface = \"veth0\"";
    let virtio = "pci = \"00:02.0\"";
    for (driver, own, foreign) in [
        ("ring", ring, xdp),
        ("ring", ring, "xdp_mode = \"copy\""),
        ("ring", ring, virtio),
        ("af_xdp", xdp, ring),
        ("af_xdp", xdp, virtio),
        ("virtio", virtio, ring),
        ("virtio", virtio, xdp),
        ("virtio", virtio, "xdp_mode = \"auto\""),
        ("virtio-user", "path = \"/run/v.sock\"", virtio),
        ("virtio", virtio, "path = \"/run/v.sock\""),
    ] {
        let key = foreign.split(' ').next().unwrap();
        let err = parse(&port(driver, own, foreign)).unwrap_err();
        assert_eq!(err.key(), Some(format!("ports[0].{key}").as_str()), "{err}");
        let line = err.to_string();
        for part in [
            &format!("unknown field `{key}`") as &str,
            &format!("for driver = \"{driver}\""),
            "(line 8, column 1)",
        ] {
            assert!(line.contains(part), "{line:?} does not mention {part:?}");
        }
    }
}

#[test]
fn type_errors_inside_a_port_name_the_key_and_line() {
    let text = edit(&[("peer = \"port1\"", "peer = 1")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[0].peer: invalid type: integer `1`, expected a string",
        &["(line 10, column 8)"],
    );
    let text = edit(&[("driver = \"ring\"", "driver = 3")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[0].driver: wanted string or table",
        &["(line 9, column 10)"],
    );
}

#[test]
fn ports_must_be_an_array_of_tables() {
    let mempool = "[[mempools]]\nname = \"p\"\nbuffers = 10\nbuffer_size = 64\n";
    assert_rejected(
        &format!("ports = 3\n{mempool}"),
        "fwd.toml: ports: invalid type: integer, expected an array of [[ports]] tables",
        &["(line 1, column 9)"],
    );
    assert_rejected(
        &format!("ports = [\"ring\"]\n{mempool}"),
        "fwd.toml: ports[0]: invalid type: string, expected a [[ports]] table",
        &["(line 1, column 10)"],
    );
}

#[test]
fn the_first_problem_in_the_file_is_reported() {
    // Ports are read apart from the rest of the file; the earlier of two errors still wins.
    let bad_port = ("peer = \"port1\"", "peer = \"port1\"\npci = \"00:10.0\"");
    let text = edit(&[bad_port, ("buffers = 8191", "buffers = \"many\"")]);
    assert_rejected(&text, "fwd.toml: mempools[0].buffers: invalid type", &[]);
    let text = edit(&[bad_port, ("core = 1", "core = \"one\"")]);
    assert_rejected(&text, "fwd.toml: ports[0].pci: unknown field `pci`", &[]);
}

#[test]
fn unknown_mempool() {
    let text = edit(&[(
        "queues = 4\n\n[[ports]]",
        "queues = 4\nmempool = \"jumbo\"\n\n[[ports]]",
    )]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].mempool: \"jumbo\" is not a mempool (mempools: pkt)"
    );
}

#[test]
fn mempool_may_be_omitted_only_with_one_pool() {
    let text = format!("[[mempools]]\nname = \"big\"\nbuffers = 10\nbuffer_size = 9000\n{BASE}");
    assert_rejected(
        &text,
        "fwd.toml: ports[0].mempool: missing: the file has 2 mempools",
        &[],
    );
}
