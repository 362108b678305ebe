//! Lcore names and cores: every core checked before any thread starts, and the spec each
//! lcore starts with.

use sluice_config::{Config, LcoreRole};
use sluice_dataplane::{LcoreSpec, lcore};

use crate::error::AppError;
use crate::fwd::CoreMap;

/// Checks that every core the configuration pins to (lcores, generator, sink), as `map`
/// places them, can be used (the error names the config key without a map); says once
/// which lcores share a CPU.
pub(super) fn check(config: &Config, map: Option<&CoreMap>) -> Result<(), AppError> {
    let Some(m) = map else {
        return Ok(config.check_cores(&lcore::available_cores())?);
    };
    let cpu = |core: u32| m.cpu(core);
    let all: Vec<u32> = config
        .lcores()
        .iter()
        .map(|l| l.core)
        .chain(config.generator().map(|g| g.core))
        .chain(config.sink().map(|s| s.core))
        .collect();
    for (on, cores) in m.sharing(&all) {
        let names: Vec<String> = cores.iter().map(u32::to_string).collect();
        eprintln!(
            "sluice: warning: --lcores: cores {} of the configuration share CPU {on}: \
             busy-polling lcores on one CPU take turns by time slices (a fraction of the \
             rate, millisecond latencies)",
            names.join(", ")
        );
    }
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
        let name = if cpu(core) == core as usize {
            name
        } else {
            format!("{name}, on CPU {} by --lcores", cpu(core))
        };
        lcore::check_core(&name, cpu(core))?;
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
