//! Generator and sink.

use super::*;

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
