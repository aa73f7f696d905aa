//! The flags of `run`: `--config` and one flag per setting, each
//! generated from the setting's definition ([`crate::config::settings`])
//! and overriding the file's key of the same name.

use std::path::PathBuf;

use clap::Args;

use crate::config::{Config, Error, Settings};

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (default /etc/fail2ban-healthd/config.toml,
    /// when it exists).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The settings given as flags.
    #[command(flatten)]
    pub settings: Settings,
}

impl RunArgs {
    /// The configuration file merged with the flags, validated.
    ///
    /// # Errors
    /// A one-line [`Error`] naming the file or the key at fault.
    pub fn load(&self) -> Result<Config, Error> {
        Config::load(self.config.as_deref(), self.settings.clone())
    }
}
