//! Lcore names and cores: every core checked before any thread starts, and the spec each
//! lcore starts with.

use sluice_config::{Config, LcoreRole};
use sluice_dataplane::{LcoreSpec, lcore};

use crate::error::AppError;

/// Checks that every core the configuration pins to (lcores, generator, sink) can be used;
/// the error names the config key of the first that cannot.
pub(super) fn check(config: &Config) -> Result<(), AppError> {
    Ok(config.check_cores(&lcore::available_cores())?)
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
