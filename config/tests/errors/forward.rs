//! Forwarding map.

use super::*;

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
