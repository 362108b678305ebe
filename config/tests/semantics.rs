//! Configs that are valid TOML, key by key, but cannot work as a whole: each is rejected with
//! the key to change. Also the cores a config names against the machine, and the file size cap.

use sluice_config::{Config, ConfigError, MAX_CONFIG_BYTES};

/// Generator -> gen0 ==ring==> fwd0 -> [lcore 1] -> fwd1 ==ring==> sink0 -> sink, plus a
/// spare ring pair a/b that the edits below wire in.
const BASE: &str = r#"
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048

[[ports]]
name = "gen0"
driver = "ring"
peer = "fwd0"

[[ports]]
name = "fwd0"
driver = "ring"
peer = "gen0"

[[ports]]
name = "fwd1"
driver = "ring"
peer = "sink0"

[[ports]]
name = "sink0"
driver = "ring"
peer = "fwd1"

[[ports]]
name = "a"
driver = "ring"
peer = "b"

[[ports]]
name = "b"
driver = "ring"
peer = "a"

[[lcores]]
core = 1
role = "rtc"
rx = ["fwd0/q0"]

[[forward]]
from = "fwd0"
to = "fwd1"
mode = "io"

[generator]
port = "gen0"
core = 0

[sink]
port = "sink0"
core = 0
"#;

fn edit(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "edit target {from:?} not in BASE");
        text = text.replacen(from, to, 1);
    }
    text
}

fn rejected(text: &str) -> (String, String) {
    match Config::from_str_named(text, "fwd.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => (e.key().unwrap_or("-").to_owned(), e.to_string()),
    }
}

#[test]
fn the_base_config_is_valid() {
    Config::from_str_named(BASE, "fwd.toml").unwrap();
}

#[test]
fn a_loop_through_ring_peers_names_the_rule_that_closes_it() {
    // fwd0 -> a ==> b, b -> b (a reflector) arrives at a, and a -> b arrives at a again.
    let text = edit(&[
        ("to = \"fwd1\"", "to = \"a\""),
        (
            "rx = [\"fwd0/q0\"]",
            "rx = [\"fwd0/q0\", \"b/q0\", \"a/q0\"]",
        ),
    ]) + "[[forward]]\nfrom = \"b\"\nto = \"b\"\nmode = \"mac-swap\"\n\
          [[forward]]\nfrom = \"a\"\nto = \"b\"\nmode = \"io\"\n";
    let (key, msg) = rejected(&text);
    assert_eq!(key, "forward[2].to", "{msg}");
    assert!(msg.contains("loop forever"), "{msg}");
    assert!(msg.contains("fwd0 -> a ==ring==> b"), "{msg}");
    assert!(msg.contains("a -> b ==ring==> a"), "{msg}");
}

#[test]
fn a_two_port_ring_loop_fed_by_the_generator_is_rejected() {
    // gen0 ==> fwd0 -> a ==> b -> a ==> b ...: b sends to a, which arrives back at b.
    let text = edit(&[
        ("to = \"fwd1\"", "to = \"a\""),
        ("rx = [\"fwd0/q0\"]", "rx = [\"fwd0/q0\", \"b/q0\"]"),
    ]) + "[[forward]]\nfrom = \"b\"\nto = \"a\"\nmode = \"io\"\n";
    let (key, msg) = rejected(&text);
    assert_eq!(key, "forward[1].to", "{msg}");
    assert!(msg.contains("b -> a ==ring==> b"), "{msg}");
}

#[test]
fn a_ring_cycle_no_traffic_enters_is_not_a_loop() {
    // a and b forward to each other, but nothing sends into a or b.
    let text = edit(&[("rx = [\"fwd0/q0\"]", "rx = [\"fwd0/q0\", \"a/q0\"]")])
        + "[[forward]]\nfrom = \"a\"\nto = \"b\"\nmode = \"io\"\n";
    Config::from_str_named(&text, "fwd.toml").unwrap();
}

#[test]
fn a_sink_no_traffic_can_reach_is_rejected() {
    let text = edit(&[("to = \"fwd1\"", "to = \"a\"")]);
    let (key, msg) = rejected(&text);
    assert_eq!(key, "sink.port", "{msg}");
    assert!(
        msg.contains("no traffic can reach the sink: sink0 receives what its ring peer fwd1"),
        "{msg}"
    );
}

#[test]
fn a_sink_fed_by_the_generator_directly_is_valid() {
    let text = edit(&[("port = \"sink0\"", "port = \"fwd0\"")])
        .replace("rx = [\"fwd0/q0\"]", "rx = [\"a/q0\"]")
        .replace(
            "from = \"fwd0\"\nto = \"fwd1\"",
            "from = \"a\"\nto = \"fwd1\"",
        );
    Config::from_str_named(&text, "fwd.toml").unwrap();
}

#[test]
fn sending_to_the_generators_peer_is_a_role_conflict() {
    // fwd1's frames arrive at sink0; make a rule send into fwd0, the generator's peer: its
    // frames arrive at gen0, which only transmits.
    let text = edit(&[("rx = [\"fwd0/q0\"]", "rx = [\"fwd0/q0\", \"a/q0\"]")])
        + "[[forward]]\nfrom = \"a\"\nto = \"fwd0\"\nmode = \"io\"\n";
    let (key, msg) = rejected(&text);
    assert_eq!(key, "forward[1].to", "{msg}");
    assert!(
        msg.contains("gen0, the generator's port, which only transmits"),
        "{msg}"
    );
}

#[test]
fn polling_the_sinks_peer_is_a_role_conflict() {
    let text = edit(&[("rx = [\"fwd0/q0\"]", "rx = [\"fwd0/q0\", \"fwd1/q0\"]")])
        + "[[forward]]\nfrom = \"fwd1\"\nto = \"a\"\nmode = \"io\"\n";
    let (key, msg) = rejected(&text);
    assert_eq!(key, "lcores[0].rx", "{msg}");
    assert!(msg.contains("fwd1/q0 can receive nothing"), "{msg}");
}

#[test]
fn buffer_sizes_an_af_xdp_port_refuses_are_rejected() {
    let text = edit(&[
        ("buffer_size = 2048", "buffer_size = 4000"),
        (
            "name = \"a\"\ndriver = \"ring\"\npeer = \"b\"",
            "name = \"a\"\ndriver = \"af_xdp\"\ninterface = \"veth0\"",
        ),
        (
            "name = \"b\"\ndriver = \"ring\"\npeer = \"a\"",
            "name = \"b\"\ndriver = \"ring\"\npeer = \"fwd0\"",
        ),
    ]);
    // b, a's former peer, on an interface of its own too.
    let text = text.replace(
        "name = \"b\"\ndriver = \"ring\"\npeer = \"fwd0\"",
        "name = \"b\"\ndriver = \"af_xdp\"\ninterface = \"veth1\"",
    );
    let (key, msg) = rejected(&text);
    assert_eq!(key, "mempools[0].buffer_size", "{msg}");
    assert!(msg.contains("4000 is over 3840 for af_xdp port a"), "{msg}");
    // 3840 fits a 4096-byte chunk.
    let ok = text.replace("buffer_size = 4000", "buffer_size = 3840");
    Config::from_str_named(&ok, "fwd.toml").unwrap();
}

#[test]
fn a_pool_of_u32_max_buffers_is_rejected_as_the_pool_would_be() {
    let (key, msg) = rejected(&edit(&[("buffers = 8191", "buffers = 4294967295")]));
    assert_eq!(key, "mempools[0].buffers");
    assert!(msg.contains("out of range 1..=4294967294"), "{msg}");
}

#[test]
fn check_cores_names_the_key_of_a_missing_core() {
    let config = Config::from_str_named(BASE, "fwd.toml").unwrap();
    config.check_cores(&[0, 1]).unwrap();
    let e = config.check_cores(&[0, 2, 3, 4]).unwrap_err();
    assert_eq!(e.key(), Some("lcores[0].core"));
    assert_eq!(
        e.to_string(),
        "fwd.toml: lcores[0].core: CPU 1 does not exist or is not available to this process \
         (available: 0,2-4)"
    );
    let e = config.check_cores(&[1]).unwrap_err();
    assert_eq!(e.key(), Some("generator.core"));
}

#[test]
fn reading_dev_zero_is_an_error_not_an_exhausted_memory() {
    let e = Config::from_file("/dev/zero").unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("/dev/zero: not read: a config file is at most {MAX_CONFIG_BYTES} bytes")
    );
}

#[test]
fn a_file_over_the_cap_is_refused_and_one_at_it_is_read() {
    let dir = std::env::temp_dir().join(format!("sluice-config-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.toml");
    // The base config padded with a comment to exactly the cap, then one byte more.
    let pad = MAX_CONFIG_BYTES as usize - BASE.len() - 2;
    let at_cap = format!("{BASE}#{}\n", "x".repeat(pad));
    assert_eq!(at_cap.len() as u64, MAX_CONFIG_BYTES);
    std::fs::write(&path, &at_cap).unwrap();
    Config::from_file(&path).unwrap();
    std::fs::write(&path, format!("{at_cap}\n")).unwrap();
    let e = Config::from_file(&path).unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
