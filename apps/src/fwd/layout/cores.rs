//! Lcore names and cores: every core checked before any thread starts, and the spec each
//! lcore starts with.

use sluice_config::{Config, LcoreRole};
use sluice_dataplane::{LcoreSpec, lcore};

use crate::error::AppError;

/// Checks that every core the configuration pins to (lcores, generator, sink) can be used.
pub(super) fn check(config: &Config) -> Result<(), AppError> {
    let named = config
        .lcores()
        .iter()
        .map(|l| (format!("lcore {} ({})", l.core, role_name(l.role)), l.core))
        .chain(
            config
                .generator()
                .map(|g| ("generator".to_string(), g.core)),
        )
        .chain(config.sink().map(|s| ("sink".to_string(), s.core)));
    for (name, core) in named {
        lcore::check_core(&name, core as usize)?;
    }
    Ok(())
}

/// `role` as the configuration writes it.
pub(super) fn role_name(role: LcoreRole) -> &'static str {
    match role {
        LcoreRole::RunToCompletion => "rtc",
        LcoreRole::Rx => "rx",
        LcoreRole::Worker => "worker",
        LcoreRole::Tx => "tx",
    }
}

/// An lcore named `name` on `core`, pinned there or not.
pub(super) fn spec(name: String, core: u32, pin: bool) -> LcoreSpec {
    if pin {
        LcoreSpec::pinned(name, core as usize)
    } else {
        LcoreSpec::unpinned(name)
    }
}
