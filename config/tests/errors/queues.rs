//! Queues and lcores.

use super::*;

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
