//! The command line: argument parsing and the subcommands' output.
//!
//! Owns what people and scripts see: readable tables, stable JSON and exit
//! statuses. Arguments are validated here, before anything runs, so bad
//! usage exits with status 2 and touches nothing.
//!
//! Layout: this file holds the subcommands; `run.rs` the daemon's flags
//! (generated from the settings' one definition in [`crate::config`]);
//! `probe.rs` the `probe` subcommand.

use std::time::Duration;

use clap::{Parser, Subcommand};

mod probe;
mod run;

pub use probe::{EXIT_LOCAL_FAILURE, ProbeArgs, ProbeReport, probe};
pub use run::RunArgs;

/// fail2ban-healthd: health and crash-recovery companion for fail2ban.
#[derive(Debug, Parser)]
#[command(name = "fail2ban-healthd", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe fail2ban once over its control socket and print what it reports.
    ///
    /// Exit status: 0 when fail2ban is online, 1 when it is offline,
    /// 2 on bad usage, 3 when this process could not probe (out of file
    /// descriptors or memory).
    Probe(ProbeArgs),
    /// Run the daemon: probe fail2ban, attribute crashes to activations,
    /// publish on D-Bus. Flags override the configuration file.
    ///
    /// Exit status: 0 after SIGTERM or SIGINT, 1 when the bus cannot be
    /// used or is lost, 2 on bad usage or configuration.
    Run(Box<RunArgs>),
    /// Show what the running daemon knows: fail2ban's state, its jails,
    /// the last activation and the pending recovery.
    ///
    /// Exit status: 0 when fail2ban is online and no recovery is pending,
    /// 1 otherwise, 2 when the daemon cannot be asked.
    Status {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// Print one line per signal of the daemon until interrupted.
    ///
    /// Exit status: 2 when the bus cannot be reached or is lost.
    Watch {
        /// Print one JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// Tell the daemon that JAIL was just activated (managers only).
    ///
    /// Exit status: 0 done, 1 refused, 2 when the daemon cannot be asked.
    Activate {
        /// The jail's name.
        #[arg(allow_hyphen_values = true)]
        jail: String,
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// Clear the recovery record (managers only).
    ///
    /// Exit status: 0 done, 1 refused, 2 when the daemon cannot be asked.
    Dismiss {
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// Disable the pending recovery's jail and restart fail2ban (managers
    /// only).
    ///
    /// Exit status: 0 when fail2ban answers afterwards, 1 when it does not
    /// or the daemon refused, 2 when the daemon cannot be asked.
    Rollback {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// Run fail2ban's own checks for JAIL as if it were enabled (the
    /// configuration test and a compile of its regexes), without enabling
    /// anything or touching the server (managers only).
    ///
    /// Exit status: 0 when the checks pass, 1 when they fail or the daemon
    /// refused, 2 when the daemon cannot be asked.
    Check {
        /// The jail's name.
        #[arg(allow_hyphen_values = true)]
        jail: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// Enable JAIL on trial: checked, enabled, fail2ban reloaded, and rolled
    /// back by the daemon itself if a failure is attributed to it before
    /// the timeout (rollback managers only). Shows progress until the
    /// verdict; Ctrl-C stops watching and leaves the trial running.
    ///
    /// Exit status: 0 when the jail is kept, 1 when it was rolled back,
    /// 2 when the trial could not start, 130 after Ctrl-C.
    Try {
        /// The jail's name.
        #[arg(allow_hyphen_values = true)]
        jail: String,
        /// How long the trial runs, e.g. 60s or 5m (default: the daemon's
        /// crash window).
        #[arg(long, value_name = "DURATION", value_parser = parse_trial_timeout)]
        timeout: Option<Duration>,
        /// Print one JSON object with the verdict instead of text.
        #[arg(long)]
        json: bool,
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// End the running trial now, keeping its jail (rollback managers only).
    ///
    /// Exit status: 0 done, 1 refused, 2 when the daemon cannot be asked.
    Confirm {
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
    /// End the running trial now, rolling its jail back, and wait for the
    /// rollback (rollback managers only).
    ///
    /// Exit status: 0 when rolled back, 1 refused or failed, 2 when the
    /// daemon cannot be asked.
    Abort {
        /// The bus.
        #[command(flatten)]
        bus: crate::client::BusArgs,
    },
}

/// A trial's timeout: 1 s to 24 h.
fn parse_trial_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?}: {e}"))?;
    if d < Duration::from_secs(1) || d > crate::rollback::MAX_TIMEOUT {
        return Err(format!("{s:?}: a trial runs from 1s to 24h"));
    }
    Ok(d)
}
