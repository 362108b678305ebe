//! Top level, [telemetry], transmit policy.

use super::*;

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

// [telemetry]

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

// transmit policy

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
