//! The error type of `sluice-pmd`.

/// What went wrong in the device layer or a driver. Each variant names the port or device
/// and the value at fault, so that the message alone says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A port was asked for with a shape it cannot have (zero queues, a ring size that is
    /// not a power of two, ...). Fix the configuration value named.
    #[error("port {port}: invalid {what}: {value}")]
    InvalidConfig {
        /// The port's name.
        port: String,
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
    },
}
