//! One test per rejection rule: each checks the whole `file: key: message` line or the parts
//! of it that name the key and the bad value.

use sluice_config::{Config, ConfigError, ForwardMode};

/// A valid config the tests edit: two ring ports of four queues, one rtc lcore.
const BASE: &str = r#"
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048

[[ports]]
name = "port0"
driver = "ring"
peer = "port1"
queues = 4

[[ports]]
name = "port1"
driver = "ring"
peer = "port0"
queues = 4

[[lcores]]
core = 1
role = "rtc"
rx = ["port0/q0"]

[[forward]]
from = "port0"
to = "port1"
mode = "io"
"#;

/// `BASE` with each `(from, to)` replaced once; panics if `from` is not there, so that an edit
/// that no longer applies fails the test instead of testing the unedited base.
fn edit(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "edit target {from:?} not in BASE");
        text = text.replacen(from, to, 1);
    }
    text
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_named(text, "fwd.toml")
}

/// The error line for `text`, which must be rejected.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_rejected(text: &str, prefix: &str, fragments: &[&str]) {
    let err = error(text);
    assert!(
        err.starts_with(prefix),
        "{err:?} does not start with {prefix:?}"
    );
    for f in fragments {
        assert!(err.contains(f), "{err:?} does not mention {f:?}");
    }
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn base_is_valid() {
    ok(BASE);
}

// ---- TOML syntax, unknown keys, types ----

#[test]
fn syntax_error_names_line_and_column() {
    let text = edit(&[("queues = 4\n\n[[ports]]", "queues = \n\n[[ports]]")]);
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 11,
                column: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_rejected(
        &text,
        "fwd.toml: line 11, column 10: TOML syntax error: ",
        &[],
    );
}

#[test]
fn duplicate_key_is_a_syntax_error() {
    let text = edit(&[("queues = 4\n", "queues = 4\nqueues = 2\n")]);
    assert_rejected(&text, "fwd.toml: line 12, column 1: ", &["duplicate key"]);
}

#[test]
fn unknown_key_is_named_with_its_path() {
    let text = edit(&[("peer = \"port0\"", "peer = \"port0\"\nqueus = 2")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[1].queus: unknown field `queus`",
        &["line 17, column 1"],
    );
}

#[test]
fn unknown_section_is_named() {
    let text = format!("{BASE}\n[bogus]\nx = 1\n");
    assert_rejected(&text, "fwd.toml: bogus: unknown field `bogus`", &[]);
}

#[test]
fn wrong_type_names_the_key_path_and_value() {
    let text = edit(&[("queues = 4\n\n[[lcores]]", "queues = \"4\"\n\n[[lcores]]")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[1].queues: invalid type: string \"4\"",
        &["(line 17, column 10)"],
    );
}

#[test]
fn wrong_type_inside_an_array_names_the_element() {
    let text = edit(&[("rx = [\"port0/q0\"]", "rx = [\"port0/q0\", 3]")]);
    assert_rejected(
        &text,
        "fwd.toml: lcores[0].rx[1]: invalid type: integer `3`",
        &[],
    );
}

#[test]
fn negative_number_is_rejected() {
    let text = edit(&[("core = 1", "core = -1")]);
    assert_rejected(
        &text,
        "fwd.toml: lcores[0].core: invalid value: integer `-1`",
        &[],
    );
}

#[test]
fn missing_required_key_names_the_table() {
    let text = edit(&[("driver = \"ring\"\npeer = \"port0\"", "peer = \"port0\"")]);
    assert_rejected(&text, "fwd.toml: ports[1]: missing field `driver`", &[]);
}

#[test]
fn unknown_driver_names_the_value() {
    let text = edit(&[("driver = \"ring\"", "driver = \"pcap\"")]);
    assert_rejected(
        &text,
        "fwd.toml: ports[0].driver: unknown variant `pcap`",
        &["`af_xdp`"],
    );
}

#[test]
fn empty_file_has_no_ports() {
    assert_eq!(
        error(""),
        "fwd.toml: ports: no [[ports]]: a config needs at least one port"
    );
}

// ---- names and references ----

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

// ---- queues and lcores ----

#[test]
fn queue_reference_syntax() {
    for bad in [
        "port0-q3",
        "port0/3",
        "port0/q",
        "port0/qx",
        "port0/q-1",
        "/q0",
    ] {
        let text = edit(&[("rx = [\"port0/q0\"]", &format!("rx = [\"{bad}\"]"))]);
        let err = error(&text);
        if bad == "/q0" {
            assert!(
                err.starts_with("fwd.toml: lcores[0].rx: /q0: \"\" is not a port"),
                "{err}"
            );
        } else {
            assert_eq!(
                err,
                format!(
                    "fwd.toml: lcores[0].rx: \"{bad}\" is not a queue reference: expected \
                     \"<port>/q<index>\" like \"port0/q0\""
                )
            );
        }
    }
}

#[test]
fn queue_on_unknown_port() {
    let text = edit(&[("rx = [\"port0/q0\"]", "rx = [\"port7/q0\"]")]);
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[0].rx: port7/q0: \"port7\" is not a port (ports: port0, port1)"
    );
}

#[test]
fn queue_index_beyond_the_port() {
    let text = edit(&[
        ("queues = 4\n\n[[ports]]", "queues = 2\n\n[[ports]]"),
        ("queues = 4\n\n[[lcores]]", "queues = 2\n\n[[lcores]]"),
        ("rx = [\"port0/q0\"]", "rx = [\"port0/q3\"]"),
    ]);
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[0].rx: port0 has 2 queues; q3 does not exist"
    );
    let huge = edit(&[("rx = [\"port0/q0\"]", "rx = [\"port0/q99999\"]")]);
    assert_eq!(
        error(&huge),
        "fwd.toml: lcores[0].rx: port0 has 4 queues; q99999 does not exist"
    );
}

#[test]
fn queue_polled_by_two_lcores_names_the_first_by_core() {
    // The issue's example, word for word.
    let text = edit(&[(
        "rx = [\"port0/q0\"]",
        "rx = [\"port0/q3\"]\n\n[[lcores]]\ncore = 2\nrole = \"rtc\"\nrx = [\"port0/q1\"]\n\n\
         [[lcores]]\ncore = 3\nrole = \"rtc\"\nrx = [\"port0/q3\"]",
    )]);
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[2].rx: port0/q3 is already polled by lcore 1"
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(err.key(), Some("lcores[2].rx"));
    assert_eq!(err.file().as_deref(), Some("fwd.toml"));
}

#[test]
fn queue_listed_twice_in_one_lcore() {
    let text = edit(&[("rx = [\"port0/q0\"]", "rx = [\"port0/q0\", \"port0/q0\"]")]);
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[0].rx: port0/q0 is listed twice"
    );
}

#[test]
fn tx_queue_used_by_two_lcores() {
    // Both lcores' default tx is port1/q0.
    let text = format!(
        "{BASE}\n[[lcores]]\ncore = 2\nrole = \"rtc\"\nrx = [\"port1/q0\"]\ntx = [\"port0/q0\"]\n\
         [[lcores]]\ncore = 3\nrole = \"rtc\"\nrx = [\"port0/q1\"]\ntx = [\"port1/q0\"]\n\
         [[forward]]\nfrom = \"port1\"\nto = \"port0\"\nmode = \"io\"\n"
    );
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[2].tx: port1/q0 is already used for tx by lcore 1"
    );
}

#[test]
fn overlapping_cores() {
    let text = format!("{BASE}\n[[lcores]]\ncore = 1\nrole = \"rtc\"\nrx = [\"port0/q1\"]\n");
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[1].core: core 1 is already used by lcores[0]: one lcore per core"
    );
}

#[test]
fn rtc_lcore_needs_rx_queues() {
    let text = edit(&[("rx = [\"port0/q0\"]", "rx = []")]);
    assert_rejected(
        &text,
        "fwd.toml: lcores[0].rx: missing or empty: rtc lcores poll",
        &[],
    );
}

#[test]
fn rtc_default_tx_is_the_same_queue_on_the_destination() {
    let text = edit(&[("rx = [\"port0/q0\"]", "rx = [\"port0/q2\", \"port0/q3\"]")]);
    let c = ok(&text);
    let tx: Vec<String> = c.lcores()[0].tx.iter().map(|q| c.queue_name(*q)).collect();
    assert_eq!(tx, ["port1/q2", "port1/q3"]);
}

#[test]
fn rtc_default_tx_queue_must_exist() {
    let text = r#"
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
[[ports]]
name = "a"
driver = "virtio"
pci = "00:02.0"
queues = 4
rx_descriptors = 256
[[ports]]
name = "b"
driver = "virtio"
pci = "00:03.0"
queues = 2
rx_descriptors = 256
[[lcores]]
core = 1
role = "rtc"
rx = ["a/q3"]
[[forward]]
from = "a"
to = "b"
mode = "io"
"#;
    assert_rejected(
        text,
        "fwd.toml: lcores[0].tx: default tx queue b/q3 for rx a/q3 does not exist (b has 2 queues)",
        &[],
    );
}

#[test]
fn rtc_explicit_tx_must_cover_the_destination() {
    let text = edit(&[(
        "rx = [\"port0/q0\"]",
        "rx = [\"port0/q0\"]\ntx = [\"port0/q0\"]",
    )]);
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[0].tx: no queue on port1, where rx port0/q0 forwards to"
    );
}

#[test]
fn rtc_explicit_tx_only_on_destinations() {
    let text = edit(&[(
        "rx = [\"port0/q0\"]",
        "rx = [\"port0/q0\"]\ntx = [\"port1/q0\", \"port0/q1\"]",
    )]);
    assert_rejected(
        &text,
        "fwd.toml: lcores[0].tx: port0/q1: port0 is not where any of this lcore's rx queues forward to",
        &[],
    );
}

#[test]
fn rx_on_a_port_without_a_forwarding_rule() {
    let text = edit(&[("rx = [\"port0/q0\"]", "rx = [\"port0/q0\", \"port1/q0\"]")]);
    assert_rejected(
        &text,
        "fwd.toml: lcores[0].rx: port1/q0: no [[forward]] rule has from = \"port1\"",
        &[],
    );
}

#[test]
fn unpolled_queues_are_allowed() {
    // port0 has four queues, only q0 is polled; port1 is polled by nobody.
    let c = ok(BASE);
    let port0 = c.port_id("port0").unwrap();
    let q1 = sluice_config::QueueRef {
        port: port0,
        queue: 1,
    };
    assert!(c.rx_owner(q1).is_none());
    assert_eq!(c.rx_owner(c.lcores()[0].rx[0]).unwrap().core, 1);
}

// ---- ring sizes, queue counts, pools ----

#[test]
fn descriptor_counts_must_be_powers_of_two_in_range() {
    for (value, message) in [
        (
            "0",
            "0 is not a power of two (allowed: powers of two in 64..=32768)",
        ),
        (
            "1000",
            "1000 is not a power of two (allowed: powers of two in 64..=32768)",
        ),
        ("32", "32 is out of range 64..=32768"),
        ("65536", "65536 is out of range 64..=32768"),
    ] {
        let text = edit(&[(
            "queues = 4\n\n[[ports]]",
            &format!("queues = 4\nrx_descriptors = {value}\n\n[[ports]]"),
        )]);
        assert_eq!(
            error(&text),
            format!("fwd.toml: ports[0].rx_descriptors: {message}")
        );
        let text = edit(&[(
            "queues = 4\n\n[[ports]]",
            &format!("queues = 4\ntx_descriptors = {value}\n\n[[ports]]"),
        )]);
        assert_eq!(
            error(&text),
            format!("fwd.toml: ports[0].tx_descriptors: {message}")
        );
    }
}

#[test]
fn zero_queues() {
    let text = edit(&[("queues = 4\n\n[[ports]]", "queues = 0\n\n[[ports]]")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].queues: 0 queues: a port needs at least one queue pair"
    );
}

#[test]
fn queues_over_the_driver_limit() {
    let text = edit(&[("queues = 4\n\n[[ports]]", "queues = 17\n\n[[ports]]")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].queues: 17 is over the ring driver's limit of 16 queues"
    );
    let xdp = |queues: u32| {
        format!(
            "[[mempools]]\nname = \"p\"\nbuffers = 100000\nbuffer_size = 2048\n\
             [[ports]]\nname = \"x\"\ndriver = \"af_xdp\"\ninterface = \"eth0\"\nqueues = {queues}\n\
             rx_descriptors = 64\n"
        )
    };
    ok(&xdp(64));
    assert_eq!(
        error(&xdp(65)),
        "fwd.toml: ports[0].queues: 65 is over the af_xdp driver's limit of 64 queues"
    );
}

#[test]
fn cache_size_limits() {
    let text = edit(&[("buffer_size = 2048", "buffer_size = 2048\ncache_size = 513")]);
    assert_eq!(
        error(&text),
        "fwd.toml: mempools[0].cache_size: 513 is over the maximum of 512"
    );
    let text = edit(&[(
        "buffers = 8191\nbuffer_size = 2048",
        "buffers = 511\nbuffer_size = 2048\ncache_size = 256",
    )]);
    assert_rejected(
        &text,
        "fwd.toml: mempools[0].cache_size: 256 is over half the pool (511 buffers / 2 = 255)",
        &[],
    );
    // The default cache shrinks to fit a small pool.
    let small = ok(&edit(&[("buffers = 8191", "buffers = 100")]));
    assert_eq!(small.mempools()[0].cache_size, 50);
}

#[test]
fn buffer_size_bounds() {
    for (size, good) in [
        (63, false),
        (64, true),
        (9000, true),
        (16384, true),
        (16385, false),
    ] {
        let text = edit(&[("buffer_size = 2048", &format!("buffer_size = {size}"))]);
        if good {
            assert_eq!(ok(&text).mempools()[0].buffer_size, size);
        } else {
            assert_eq!(
                error(&text),
                format!("fwd.toml: mempools[0].buffer_size: {size} is out of range 64..=16384")
            );
        }
    }
}

#[test]
fn pool_must_fill_the_rx_rings_of_its_device_ports() {
    let text = r#"
[[mempools]]
name = "pkt"
buffers = 1000
buffer_size = 2048
[[ports]]
name = "a"
driver = "virtio"
pci = "00:02.0"
queues = 2
rx_descriptors = 512
"#;
    assert_eq!(
        error(text),
        "fwd.toml: mempools[0].buffers: 1000 buffers cannot fill the rx rings of the ports \
         using the pool (a 2x512 = 1024)"
    );
}

// ---- drivers and addresses ----

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

// ---- forwarding map ----

#[test]
fn forward_to_unknown_port() {
    let text = edit(&[("to = \"port1\"", "to = \"port9\"")]);
    assert_eq!(
        error(&text),
        "fwd.toml: forward[0].to: \"port9\" is not a port (ports: port0, port1)"
    );
}

#[test]
fn forward_from_a_port_twice() {
    let text =
        format!("{BASE}\n[[forward]]\nfrom = \"port0\"\nto = \"port0\"\nmode = \"mac-swap\"\n");
    assert_eq!(
        error(&text),
        "fwd.toml: forward[1].from: port0 already has a rule (forward[0]): one rule per ingress port"
    );
}

#[test]
fn forward_to_itself_only_when_rewriting_macs() {
    let text = edit(&[("to = \"port1\"", "to = \"port0\"")]);
    assert_rejected(
        &text,
        "fwd.toml: forward[0].to: port0 -> port0 in io mode would echo frames unchanged",
        &[],
    );
    let swap = ok(&edit(&[
        ("to = \"port1\"", "to = \"port0\""),
        ("mode = \"io\"", "mode = \"mac-swap\""),
    ]));
    assert_eq!(swap.forward()[0].mode, ForwardMode::MacSwap);
    assert_eq!(swap.queue_name(swap.lcores()[0].tx[0]), "port0/q0");
}

#[test]
fn l2_mode_needs_dst_mac_and_only_l2_takes_macs() {
    let text = edit(&[("mode = \"io\"", "mode = \"l2\"")]);
    assert_rejected(
        &text,
        "fwd.toml: forward[0].dst_mac: missing: mode = \"l2\" needs dst_mac",
        &[],
    );
    let text = edit(&[(
        "mode = \"io\"",
        "mode = \"io\"\ndst_mac = \"02:00:00:00:00:02\"",
    )]);
    assert_eq!(
        error(&text),
        "fwd.toml: forward[0].dst_mac: only a setting of mode = \"l2\""
    );
    let text = edit(&[(
        "mode = \"io\"",
        "mode = \"l2\"\ndst_mac = \"ff:ff:ff:ff:ff:ff\"\nsrc_mac = \"03:00:00:00:00:01\"",
    )]);
    assert_rejected(
        &text,
        "fwd.toml: forward[0].src_mac: 03:00:00:00:00:01 is not a unicast",
        &[],
    );
    let text = edit(&[(
        "mode = \"io\"",
        "mode = \"l2\"\ndst_mac = \"ff:ff:ff:ff:ff:ff\"",
    )]);
    let mode = ok(&text).forward()[0].mode;
    assert_eq!(
        mode,
        ForwardMode::L2 {
            dst: sluice_config::MacAddr([0xff; 6]),
            src: None
        }
    );
}

#[test]
fn unknown_forward_mode() {
    let text = edit(&[("mode = \"io\"", "mode = \"macswap\"")]);
    assert_rejected(
        &text,
        "fwd.toml: forward[0].mode: unknown variant `macswap`",
        &["`mac-swap`"],
    );
}

#[test]
fn forward_from_an_unpolled_port() {
    let text = format!("{BASE}\n[[forward]]\nfrom = \"port1\"\nto = \"port0\"\nmode = \"io\"\n");
    assert_eq!(
        error(&text),
        "fwd.toml: forward[1].from: no lcore polls port1, so this rule would never apply"
    );
}

// ---- pipeline ----

const PIPELINE_LCORES: &str = "[[lcores]]\ncore = 1\nrole = \"rx\"\nrx = [\"port0/q0\"]\n\n\
    [[lcores]]\ncore = 2\nrole = \"worker\"\n\n[[lcores]]\ncore = 3\nrole = \"tx\"\ntx = [\"port1/q0\"]\n";
const BASE_LCORE: &str = "[[lcores]]\ncore = 1\nrole = \"rtc\"\nrx = [\"port0/q0\"]\n";

#[test]
fn pipeline_roles_need_a_pipeline_section() {
    let text = edit(&[(BASE_LCORE, PIPELINE_LCORES)]);
    assert_eq!(
        error(&text),
        "fwd.toml: pipeline: missing: lcores[0] is a pipeline stage, which needs a [pipeline] section"
    );
    let c = ok(&format!("{text}\n[pipeline]\n"));
    let p = c.pipeline().unwrap();
    assert_eq!((p.ring_size, p.burst), (1024, 32));
}

#[test]
fn pipeline_needs_every_stage() {
    let text = edit(&[(
        BASE_LCORE,
        "[[lcores]]\ncore = 1\nrole = \"rx\"\nrx = [\"port0/q0\"]\n\n\
         [[lcores]]\ncore = 3\nrole = \"tx\"\ntx = [\"port1/q0\"]\n",
    )]);
    assert_eq!(
        error(&format!("{text}\n[pipeline]\n")),
        "fwd.toml: lcores: lcores[0] is a pipeline stage, but no lcore has role \"worker\": \
         a pipeline needs rx, worker and tx lcores"
    );
}

#[test]
fn pipeline_section_without_stages() {
    let text = format!("{BASE}\n[pipeline]\nring_size = 1024\n");
    assert_rejected(
        &text,
        "fwd.toml: pipeline: no lcore has role",
        &["remove it"],
    );
}

#[test]
fn pipeline_ring_size_and_burst() {
    let text = edit(&[(BASE_LCORE, PIPELINE_LCORES)]);
    assert_eq!(
        error(&format!("{text}\n[pipeline]\nring_size = 1000\n")),
        "fwd.toml: pipeline.ring_size: 1000 is not a power of two (allowed: powers of two in 64..=65536)"
    );
    assert_eq!(
        error(&format!("{text}\n[pipeline]\nring_size = 0\n")),
        "fwd.toml: pipeline.ring_size: 0 is not a power of two (allowed: powers of two in 64..=65536)"
    );
    assert_eq!(
        error(&format!(
            "{text}\n[pipeline]\nring_size = 64\nburst = 128\n"
        )),
        "fwd.toml: pipeline.burst: 128 is larger than pipeline.ring_size 64"
    );
    assert_eq!(
        error(&format!("{text}\n[pipeline]\nburst = 0\n")),
        "fwd.toml: pipeline.burst: 0 is out of range 1..=256"
    );
}

#[test]
fn pipeline_stage_queue_rules() {
    let worker_rx = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace(
            "role = \"worker\"",
            "role = \"worker\"\nrx = [\"port0/q1\"]",
        ),
    )]);
    assert_eq!(
        error(&format!("{worker_rx}\n[pipeline]\n")),
        "fwd.toml: lcores[1].rx: worker lcores poll no rx queues; remove rx"
    );
    let rx_tx = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace(
            "rx = [\"port0/q0\"]",
            "rx = [\"port0/q0\"]\ntx = [\"port1/q1\"]",
        ),
    )]);
    assert_eq!(
        error(&format!("{rx_tx}\n[pipeline]\n")),
        "fwd.toml: lcores[0].tx: rx lcores send on no tx queues; remove tx"
    );
    let no_tx = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace("tx = [\"port1/q0\"]", "tx = []"),
    )]);
    assert_eq!(
        error(&format!("{no_tx}\n[pipeline]\n")),
        "fwd.toml: lcores[2].tx: missing or empty: tx lcores send on at least one tx queue"
    );
    let uncovered = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace("tx = [\"port1/q0\"]", "tx = [\"port0/q0\"]"),
    )]);
    assert_eq!(
        error(&format!("{uncovered}\n[pipeline]\n")),
        "fwd.toml: lcores[0].rx: port0/q0 forwards to port1, but no tx lcore has a queue on port1"
    );
}

// ---- generator and sink ----

const HELPERS: &str = r#"
[[ports]]
name = "gen0"
driver = "ring"
peer = "sink0"
queues = 1

[[ports]]
name = "sink0"
driver = "ring"
peer = "gen0"
queues = 1

[generator]
port = "gen0"
core = 0

[sink]
port = "sink0"
core = 0
"#;

#[test]
fn generator_and_sink_may_share_a_core() {
    let c = ok(&format!("{BASE}{HELPERS}"));
    let g = c.generator().unwrap();
    assert_eq!(
        (g.core, g.frame_size, g.flows, g.rate_pps),
        (0, 64, 1, None)
    );
    assert_eq!(c.sink().unwrap().core, 0);
}

#[test]
fn generator_and_sink_may_not_share_an_lcore_core() {
    let text = format!("{BASE}{}", HELPERS.replacen("core = 0", "core = 1", 1));
    assert_eq!(
        error(&text),
        "fwd.toml: generator.core: core 1 is already used by lcore 1 (lcores[0]); the \
         generator and sink may share a core only with each other"
    );
    let text = format!(
        "{BASE}{}",
        HELPERS.replace("port = \"sink0\"\ncore = 0", "port = \"sink0\"\ncore = 1")
    );
    assert_rejected(
        &text,
        "fwd.toml: sink.core: core 1 is already used by lcore 1",
        &[],
    );
}

#[test]
fn generator_and_sink_own_their_ports() {
    let text = edit(&[("rx = [\"port0/q0\"]", "rx = [\"port0/q0\", \"gen0/q0\"]")]) + HELPERS;
    assert_eq!(
        error(&text),
        "fwd.toml: lcores[0].rx: gen0/q0: port gen0 belongs to the generator"
    );
    let text = edit(&[("to = \"port1\"", "to = \"sink0\"")]) + HELPERS;
    assert_eq!(
        error(&text),
        "fwd.toml: forward[0].to: sink0 belongs to the sink"
    );
}

#[test]
fn generator_settings() {
    let with = |extra: &str| {
        format!(
            "{BASE}{}",
            HELPERS.replace(
                "port = \"gen0\"\ncore = 0",
                &format!("port = \"gen0\"\ncore = 0\n{extra}")
            )
        )
    };
    assert_eq!(
        error(&with("frame_size = 63")),
        "fwd.toml: generator.frame_size: 63 is out of range 64..=2052 (64 is the minimum \
         Ethernet frame; the maximum is gen0's buffer_size 2048 + 4 FCS bytes)"
    );
    ok(&with("frame_size = 2052"));
    assert_eq!(
        error(&with("flows = 0")),
        "fwd.toml: generator.flows: 0 is out of range 1..=65536"
    );
    let c = ok(&with("rate_pps = 14880952\nflows = 256"));
    let g = c.generator().unwrap();
    assert_eq!(
        (g.rate_pps.map(|r| r.get()), g.flows),
        (Some(14_880_952), 256)
    );
    let text = format!(
        "{BASE}{}",
        HELPERS.replace("port = \"gen0\"\ncore", "port = \"nope\"\ncore")
    );
    assert_eq!(
        error(&text),
        "fwd.toml: generator.port: \"nope\" is not a port (ports: port0, port1, gen0, sink0)"
    );
}

// ---- top level ----

#[test]
fn burst_and_stats() {
    assert_eq!(
        error(&format!("burst = 0\n{BASE}")),
        "fwd.toml: burst: 0 is out of range 1..=256"
    );
    assert_eq!(
        error(&format!("burst = 257\n{BASE}")),
        "fwd.toml: burst: 257 is out of range 1..=256"
    );
    let c = ok(&format!("burst = 64\n{BASE}\n[stats]\ninterval_ms = 0\n"));
    assert_eq!((c.burst(), c.stats_interval()), (64, None));
}

#[test]
fn value_errors_have_no_file() {
    let err = "nope".parse::<sluice_config::MacAddr>().unwrap_err();
    assert!(matches!(err, ConfigError::Value { .. }));
    assert_eq!(err.file(), None);
    assert_eq!(err.key(), None);
}

// ---- [telemetry] ----

#[test]
fn telemetry_prometheus_is_an_address_and_round_trips() {
    let c = ok(&format!(
        "{BASE}\n[telemetry]\nprometheus = \"127.0.0.1:9464\"\n"
    ));
    assert_eq!(c.prometheus(), Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(ok(&c.to_toml()).prometheus(), c.prometheus());
    assert_eq!(ok(BASE).prometheus(), None);
    assert_rejected(
        &format!("{BASE}\n[telemetry]\nprometheus = \"localhost:9464\"\n"),
        "fwd.toml: telemetry.prometheus: ",
        &["'localhost:9464'", "not an IP address and port"],
    );
    assert_rejected(
        &format!("{BASE}\n[telemetry]\nsocket = true\n"),
        "fwd.toml",
        &["socket"],
    );
}

// ---- transmit policy ----

#[test]
fn tx_policy_defaults_to_drop_and_takes_lossless() {
    use sluice_config::TxPolicy;
    assert_eq!(ok(BASE).lcores()[0].tx_policy, TxPolicy::Drop);
    let text = edit(&[("role = \"rtc\"", "role = \"rtc\"\ntx_policy = \"lossless\"")]);
    let config = ok(&text);
    assert_eq!(config.lcores()[0].tx_policy, TxPolicy::Lossless);
    // It survives rendering.
    let again = parse(&config.to_toml()).unwrap();
    assert_eq!(again.lcores()[0].tx_policy, TxPolicy::Lossless);
}

#[test]
fn unknown_tx_policy_names_the_key_and_the_choices() {
    let text = edit(&[("role = \"rtc\"", "role = \"rtc\"\ntx_policy = \"retry\"")]);
    assert_rejected(
        &text,
        "fwd.toml: lcores[0].tx_policy: unknown variant `retry`",
        &["drop", "lossless"],
    );
}
