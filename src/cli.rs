//! The command line: argument parsing and the subcommands' output.
//!
//! Owns what people and scripts see: readable tables, stable JSON and exit
//! statuses. Arguments are validated here, before anything runs, so bad
//! usage exits with status 2 and touches nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::client::table::render_table;
use crate::fail2ban::{self, ProbeConfig, codec, probe::DEFAULT_SOCKET};
use crate::health::{JailStats, OfflineReason, ServerStatus};
use crate::text::error_chain;

/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The longest probe deadline accepted, in seconds.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

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
    if d < Duration::from_secs(1) || d > crate::daemon::trial::MAX_TIMEOUT {
        return Err(format!("{s:?}: a trial runs from 1s to 24h"));
    }
    Ok(d)
}

/// Arguments of `run`; each overrides the configuration file's key of the
/// same name.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (default /etc/fail2ban-healthd/config.toml,
    /// when it exists).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// fail2ban's control socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<String>,
    /// Time between probes, e.g. 30s.
    #[arg(long, value_name = "DURATION")]
    pub probe_interval: Option<String>,
    /// Deadline of one probe, e.g. 5s.
    #[arg(long, value_name = "DURATION")]
    pub probe_timeout: Option<String>,
    /// How long after an activation a failure is attributed to it, e.g. 60s.
    #[arg(long, value_name = "DURATION")]
    pub crash_window: Option<String>,
    /// How long a newly activated jail may take to appear, e.g. 5s.
    #[arg(long, value_name = "DURATION")]
    pub jail_start_grace: Option<String>,
    /// Time between probes while an activation's window is open, e.g. 1s.
    #[arg(long, value_name = "DURATION")]
    pub watch_interval: Option<String>,
    /// After a clean stop of fail2ban (a restart), how long it may take to
    /// come back healthy before the stop counts as a failure, e.g. 15s.
    #[arg(long, value_name = "DURATION")]
    pub restart_grace: Option<String>,
    /// Members of this group may register activations and dismiss records.
    #[arg(long, value_name = "GROUP")]
    pub manage_group: Option<String>,
    /// Members of this group may roll back (Rollback); none by default.
    #[arg(long, value_name = "GROUP")]
    pub rollback_group: Option<String>,
    /// Where activations and records are kept across restarts
    /// (default $STATE_DIRECTORY/state.json, else /var/lib/fail2ban-healthd/state.json).
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<String>,
    /// fail2ban's systemd unit, followed to learn how fail2ban ended
    /// (default fail2ban.service; empty disables).
    #[arg(long, value_name = "UNIT")]
    pub fail2ban_unit: Option<String>,
    /// Whether to detect at once (held connection, socket watch, unit
    /// watch) or only at the intervals: true or false (default true).
    #[arg(long, value_name = "BOOL")]
    pub instant_detection: Option<bool>,
    /// The bus to serve on: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session.
    #[arg(long, value_name = "BUS")]
    pub bus: Option<String>,
    /// An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus.
    #[arg(long, value_name = "ADDRESS")]
    pub bus_address: Option<String>,
    /// Where logs go: auto (the journal when present), journal or stderr.
    #[arg(long, value_name = "TARGET")]
    pub log: Option<String>,
    /// error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// The drop-in a rollback writes
    /// (default /etc/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local).
    #[arg(long, value_name = "PATH")]
    pub rollback_dropin: Option<String>,
    /// Run after a rollback while fail2ban is up and not a systemd unit
    /// (default "fail2ban-client reload"; split on spaces, no shell).
    #[arg(long, value_name = "COMMAND")]
    pub fail2ban_reload_command: Option<String>,
    /// Run after a rollback while fail2ban is down and not a systemd unit
    /// (default "fail2ban-client start"; split on spaces, no shell).
    #[arg(long, value_name = "COMMAND")]
    pub fail2ban_start_command: Option<String>,
    /// How long a rollback waits for fail2ban to answer again, e.g. 15s.
    #[arg(long, value_name = "DURATION")]
    pub rollback_timeout: Option<String>,
    /// fail2ban-client, for the checks of Check and Try
    /// (default "fail2ban-client"; split on spaces, no shell).
    #[arg(long, value_name = "COMMAND")]
    pub fail2ban_client_command: Option<String>,
    /// Whether Try runs fail2ban's checks before it reloads fail2ban:
    /// true or false (default true).
    #[arg(long, value_name = "BOOL")]
    pub trial_checks: Option<bool>,
    /// Write Prometheus metrics to this file after every probe (for
    /// node_exporter's textfile collector).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<String>,
}

impl RunArgs {
    /// The flags as raw settings.
    pub fn raw(&self) -> crate::config::RawConfig {
        crate::config::RawConfig {
            socket: self.socket.clone(),
            probe_interval: self.probe_interval.clone(),
            probe_timeout: self.probe_timeout.clone(),
            crash_window: self.crash_window.clone(),
            jail_start_grace: self.jail_start_grace.clone(),
            watch_interval: self.watch_interval.clone(),
            restart_grace: self.restart_grace.clone(),
            manage_group: self.manage_group.clone(),
            rollback_group: self.rollback_group.clone(),
            state_file: self.state_file.clone(),
            fail2ban_unit: self.fail2ban_unit.clone(),
            instant_detection: self.instant_detection,
            bus: self.bus.clone(),
            bus_address: self.bus_address.clone(),
            log: self.log.clone(),
            log_level: self.log_level.clone(),
            rollback_dropin: self.rollback_dropin.clone(),
            fail2ban_reload_command: self.fail2ban_reload_command.clone(),
            fail2ban_start_command: self.fail2ban_start_command.clone(),
            rollback_timeout: self.rollback_timeout.clone(),
            fail2ban_client_command: self.fail2ban_client_command.clone(),
            trial_checks: self.trial_checks,
            metrics_file: self.metrics_file.clone(),
        }
    }

    /// The configuration file merged with the flags, validated.
    ///
    /// # Errors
    /// A one-line [`crate::config::Error`] naming the key at fault.
    pub fn load(&self) -> Result<crate::config::Config, crate::config::Error> {
        use crate::config::{Config, DEFAULT_PATH, RawConfig, system_group};
        let file = match &self.config {
            Some(path) => RawConfig::from_file(path)?,
            None if std::path::Path::new(DEFAULT_PATH).exists() => {
                RawConfig::from_file(std::path::Path::new(DEFAULT_PATH))?
            }
            None => RawConfig::default(),
        };
        Config::from_raw(&file.overridden_by(self.raw()), system_group)
    }
}

/// Arguments of `probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// fail2ban's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET, value_parser = parse_socket_path)]
    pub socket: PathBuf,
    /// Deadline for the whole probe, in seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// fail2ban's systemd unit, asked first: under socket activation a
    /// stopped service is reported without connecting, since a connection
    /// would start fail2ban (empty: do not ask systemd).
    #[arg(long, value_name = "UNIT", default_value = "fail2ban.service")]
    pub unit: String,
    /// Connect even when a connection would start a socket-activated
    /// fail2ban.
    #[arg(long)]
    pub connect: bool,
}

/// Why `probe` did not connect: systemd says fail2ban's service is not
/// running under socket activation. `None` when connecting is harmless or
/// systemd cannot be asked.
async fn systemd_says_offline(args: &ProbeArgs) -> Option<(OfflineReason, String)> {
    if args.connect || args.unit.is_empty() {
        return None;
    }
    let ask = async {
        let conn = zbus::Connection::system().await.ok()?;
        let unit = crate::systemd::FailUnit::open(&conn, &args.unit, &args.socket)
            .await
            .ok()??;
        let state = unit.state().await.ok()?;
        let reason = state.gate()?;
        let socket_unit = unit.socket.as_ref().map_or("", |(name, _)| name.as_str());
        Some((
            reason,
            format!(
                "{} is {} and {socket_unit} is {}; not connecting, since a connection \
                 would start fail2ban (--connect connects anyway)",
                args.unit,
                state.active_state,
                state.socket_state.as_deref().unwrap_or("unknown"),
            ),
        ))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

fn parse_socket_path(raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("the socket path is empty".into());
    }
    if raw.len() > MAX_SOCKET_PATH {
        return Err(format!(
            "the socket path is {} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH}",
            raw.len()
        ));
    }
    if raw.contains('\0') {
        return Err("the socket path contains a NUL byte".into());
    }
    Ok(PathBuf::from(raw))
}

fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let secs: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "the timeout must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The JSON document printed by `probe --json`; its field names are stable.
#[derive(Debug, Serialize)]
pub struct ProbeReport<'a> {
    /// Whether fail2ban gave a valid answer.
    pub online: bool,
    /// fail2ban's version; empty while offline.
    pub version: &'a str,
    /// Per-jail counters, sorted by name; empty while offline.
    pub jails: &'a [JailStats],
    /// `null` while online or after a local failure, otherwise a name such
    /// as `"socket_missing"`.
    pub offline_reason: Option<&'static str>,
    /// The D-Bus contract's number for `offline_reason` (`0` while online).
    pub offline_reason_code: u32,
    /// `null` while online, otherwise the error in words.
    pub error: Option<String>,
    /// Whether the probe failed for want of this process's own resources
    /// (then `offline_reason` is `null`: nothing is known about fail2ban).
    pub local_error: bool,
    /// The socket that was probed.
    pub socket: String,
}

/// The exit status of `probe` when the probe itself failed (this process
/// ran out of file descriptors, kernel buffers or memory): nothing is
/// known about fail2ban.
pub const EXIT_LOCAL_FAILURE: u8 = 3;

/// The longest error message `probe` prints, in bytes.
const MAX_ERROR_TEXT: usize = 1024;

/// Runs `probe` and returns the process's exit status.
pub async fn probe(args: ProbeArgs) -> ExitCode {
    let config = ProbeConfig {
        socket: args.socket.clone(),
        timeout: args.timeout,
        max_reply: codec::DEFAULT_MAX_REPLY,
    };
    // (reason, message, whether the failure is this process's own)
    let outcome = match systemd_says_offline(&args).await {
        Some((reason, message)) => Err((reason, message, false)),
        None => fail2ban::probe_once(&config)
            .await
            .map_err(|e| (e.offline_reason(), error_chain(&e), e.is_local())),
    };
    // Whatever came from outside (fail2ban, systemd, the command line) is
    // printed without control characters.
    let outcome = outcome.map_err(|(reason, message, local)| {
        (
            reason,
            crate::text::clean(&message, MAX_ERROR_TEXT).into_owned(),
            local,
        )
    });
    let socket = crate::text::clean(&config.socket.display().to_string(), 256).into_owned();
    let empty = ServerStatus {
        version: String::new(),
        jails: Vec::new(),
    };
    let (status, error) = match &outcome {
        Ok(status) => (status, None),
        Err(e) => (&empty, Some(e)),
    };
    let local = error.is_some_and(|(_, _, local)| *local);
    if args.json {
        let report = ProbeReport {
            online: error.is_none(),
            version: &crate::text::clean(&status.version, codec::MAX_VERSION),
            jails: &status.jails,
            offline_reason: error
                .filter(|_| !local)
                .map(|(reason, _, _)| reason.as_str()),
            offline_reason_code: error
                .filter(|_| !local)
                .map_or(0, |(reason, _, _)| reason.code()),
            error: error.map(|(_, message, _)| message.clone()),
            local_error: local,
            socket,
        };
        // Serialising plain strings and numbers cannot fail.
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        match error {
            None => print!("{}", render_table(status, &socket)),
            Some((_, message, true)) => {
                println!("fail2ban-healthd could not probe fail2ban: {message}");
            }
            Some((reason, message, false)) => {
                println!("fail2ban is offline ({reason}): {message}");
            }
        }
    }
    match error {
        None => ExitCode::SUCCESS,
        Some((_, _, true)) => ExitCode::from(EXIT_LOCAL_FAILURE),
        Some(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_accepts_fractions_and_refuses_nonsense() {
        assert_eq!(parse_timeout("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "abc", "NaN", "inf", "3601", ""] {
            assert!(parse_timeout(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn socket_path_must_fit_a_unix_address() {
        assert!(parse_socket_path("/run/fail2ban/fail2ban.sock").is_ok());
        assert!(parse_socket_path("").is_err());
        assert!(parse_socket_path(&format!("/{}", "x".repeat(107))).is_err());
        assert!(parse_socket_path(&format!("/{}", "x".repeat(106))).is_ok());
    }
}
