//! Where logs go: `log`, `log_level`.

use super::values::one_of;
use super::{Error, Settings};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The journal when journald listens, else standard error.
    Auto,
    /// The journal.
    Journal,
    /// Standard error.
    Stderr,
}

/// The log target and the most detailed level logged.
pub(super) fn logging(raw: &Settings) -> Result<(LogTarget, tracing::Level), Error> {
    let target = one_of(
        "log",
        &raw.log,
        &[
            ("auto", LogTarget::Auto),
            ("journal", LogTarget::Journal),
            ("stderr", LogTarget::Stderr),
        ],
    )?;
    let level = one_of(
        "log_level",
        &raw.log_level,
        &[
            ("error", tracing::Level::ERROR),
            ("warn", tracing::Level::WARN),
            ("info", tracing::Level::INFO),
            ("debug", tracing::Level::DEBUG),
            ("trace", tracing::Level::TRACE),
        ],
    )?;
    Ok((target, level))
}
