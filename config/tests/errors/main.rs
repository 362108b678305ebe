//! One test per rejection rule: each checks the whole `file: key: message` line or the parts
//! of it that name the key and the bad value.

use sluice_config::{Config, ConfigError, ForwardMode};

mod drivers;
mod forward;
mod generator;
mod names;
mod pipeline;
mod queues;
mod sizes;
mod syntax;
mod top;

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
