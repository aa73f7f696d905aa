//! Logging: to the journal (with structured fields) when journald is
//! there, to standard error otherwise.
//!
//! Owns the choice of sink and the level filter. Event names and field
//! names are chosen at the call sites; journald receives each field in
//! upper case (`jail` becomes `JAIL`).

use std::io::IsTerminal;
use std::path::Path;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogTarget;

/// journald's native socket: present where journald runs.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Where logs actually went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// The journal.
    Journal,
    /// Standard error.
    Stderr,
}

/// Installs the global subscriber: this crate's events at `level`, other
/// crates' warnings and errors.
///
/// # Errors
/// When the journal was asked for explicitly and cannot be reached.
pub fn init(target: LogTarget, level: tracing::Level) -> anyhow::Result<Sink> {
    let filter = Targets::new()
        .with_default(tracing::Level::WARN)
        .with_target("fail2ban_healthd", level);
    let want_journal = match target {
        LogTarget::Journal => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => Path::new(JOURNAL_SOCKET).exists(),
    };
    if want_journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_syslog_identifier("fail2ban-healthd".into())
                    .with_field_prefix(None);
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .init();
                return Ok(Sink::Journal);
            }
            Err(e) if target == LogTarget::Journal => {
                anyhow::bail!("cannot log to the journal: {e}");
            }
            Err(_) => {}
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    Ok(Sink::Stderr)
}
