//! TOML syntax, unknown keys, types.

use super::*;

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
