//! What the binaries share on their command lines: the configuration they run, the
//! `--duration` they accept, the stop signals they install, and how they print.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::AppError;
use crate::config::Config;

/// The configuration at `path`, or the built-in loopback one when there is none.
pub fn load_config(path: Option<&Path>) -> Result<Config, AppError> {
    Ok(match path {
        Some(path) => Config::from_file(path)?,
        None => Config::builtin_default(),
    })
}

/// `--duration SECONDS`: a positive, finite number of seconds, or none.
pub fn duration(seconds: Option<f64>) -> Result<Option<Duration>, AppError> {
    match seconds {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(AppError::Usage(format!(
            "--duration: {s} is not a positive number of seconds"
        ))),
        s => Ok(s.map(Duration::from_secs_f64)),
    }
}

/// Installs SIGINT and SIGTERM handlers: the first signal sets the returned flag (an orderly
/// stop, with the summary); a second one exits at once with status 130.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, AppError> {
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so that it sees the flag before the second handler sets it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, interrupt.clone())
            .and_then(|_| signal_hook::flag::register(sig, interrupt.clone()))
            .map_err(|source| AppError::Os {
                what: "installing the SIGINT/SIGTERM handler",
                source,
            })?;
    }
    Ok(interrupt)
}

/// Writes `text` to stdout and flushes it, ignoring a closed stdout (a pipe into `head`
/// must not turn a finished run into a panic).
pub fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_positive_and_finite() {
        assert_eq!(duration(None).unwrap(), None);
        assert_eq!(
            duration(Some(1.5)).unwrap(),
            Some(Duration::from_millis(1500))
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = duration(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("--duration"), "{e}");
        }
    }
}
