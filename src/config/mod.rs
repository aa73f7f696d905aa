//! Configuration: every setting defined once, read from a TOML file and
//! from `run` flags, and validated into one [`Config`].
//!
//! Owns every default, bound and error message about settings.
//! [`settings`] defines each setting once (flag, key, default, doc);
//! [`define`] turns that list into the raw [`Settings`] and the table
//! [`SETTINGS`] the documentation is rendered from ([`docs`]). Defaults,
//! the file and the flags are merged key by key (flags win); validation,
//! one function per group in the group's module, happens once, before the
//! daemon touches the bus, and names the key at fault. It must not start
//! anything.

use std::path::{Path, PathBuf};

mod access;
mod bus;
pub mod define;
pub mod docs;
mod fail2ban;
mod files;
mod logging;
mod rollback;
pub mod settings;
mod timing;
mod values;

pub use access::{ManageGroup, system_group};
pub use bus::Bus;
pub use define::{DefaultValue, Group, Setting};
pub use logging::LogTarget;
pub use rollback::Rollback;
pub use settings::{SETTINGS, Settings};

use crate::fail2ban::ProbeConfig;
use crate::monitor::Timing;

/// Where the configuration file is read from when `--config` is not given
/// (only if it exists).
pub const DEFAULT_PATH: &str = "/etc/fail2ban-healthd/config.toml";

/// A setting that cannot be used; the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a wrong type.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{key}: {message}")]
    Value {
        /// The offending key (flags use the same names).
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

fn bad(key: &'static str, message: impl Into<String>) -> Error {
    Error::Value {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// Parses a TOML document; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Syntax`] with a one-line message naming the line (and the
    /// key, when it is unknown).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().replace('\n', " ");
            Error::Syntax {
                path: origin.to_owned(),
                message: match line {
                    Some(l) => format!("line {l}: {message}"),
                    None => message,
                },
            }
        })
    }

    /// Reads the file at `path`.
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Syntax`].
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }
}

/// Validated settings of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How to probe fail2ban.
    pub probe: ProbeConfig,
    /// Interval, crash window and grace.
    pub timing: Timing,
    /// Who besides root may manage.
    pub manage_group: Option<ManageGroup>,
    /// Who besides root may roll back.
    pub rollback_group: Option<ManageGroup>,
    /// The state file.
    pub state_file: PathBuf,
    /// fail2ban's systemd unit, or empty.
    pub fail2ban_unit: String,
    /// Whether the instant sources of detection run.
    pub instant_detection: bool,
    /// The bus to serve on.
    pub bus: Bus,
    /// Where logs go.
    pub log: LogTarget,
    /// The most detailed level logged.
    pub log_level: tracing::Level,
    /// How rollbacks are done.
    pub rollback: Rollback,
    /// Where Prometheus metrics are written after every probe, if anywhere.
    pub metrics_file: Option<PathBuf>,
}

impl Config {
    /// The file at `path` (else [`DEFAULT_PATH`] when it exists) with
    /// `flags` over it, validated; groups are looked up in the system.
    ///
    /// # Errors
    /// A one-line [`Error`] naming the file or the key at fault.
    pub fn load(path: Option<&Path>, flags: Settings) -> Result<Self, Error> {
        let file = match path {
            Some(path) => Settings::from_file(path)?,
            None if Path::new(DEFAULT_PATH).exists() => {
                Settings::from_file(Path::new(DEFAULT_PATH))?
            }
            None => Settings::default(),
        };
        Config::from_raw(&file.overridden_by(flags), system_group)
    }

    /// Validates raw settings over the defaults; `lookup_group` resolves a
    /// group name to its id.
    ///
    /// # Errors
    /// [`Error::Value`] naming the first key at fault.
    pub fn from_raw(
        raw: &Settings,
        lookup_group: impl Fn(&str) -> Option<u32>,
    ) -> Result<Self, Error> {
        let raw = Settings::defaults().overridden_by(raw.clone());
        let probe = fail2ban::probe(&raw)?;
        let timing = timing::timing(&raw)?;
        let manage_group =
            access::group("manage_group", raw.manage_group.as_deref(), &lookup_group)?;
        let rollback_group = access::group(
            "rollback_group",
            raw.rollback_group.as_deref(),
            &lookup_group,
        )?;
        let state_file = files::state_file(&raw)?;
        let rollback = rollback::rollback(&raw)?;
        let metrics_file = files::metrics_file(&raw)?;
        let fail2ban_unit = fail2ban::unit(&raw)?;
        let bus = bus::bus(&raw)?;
        let (log, log_level) = logging::logging(&raw)?;
        Ok(Config {
            probe,
            timing,
            manage_group,
            rollback_group,
            state_file,
            fail2ban_unit,
            instant_detection: fail2ban::instant_detection(&raw)?,
            bus,
            log,
            log_level,
            rollback,
            metrics_file,
        })
    }
}

#[cfg(test)]
mod tests;
