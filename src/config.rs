//! Configuration: the raw settings of a TOML file and of command-line
//! flags, and their validation into one [`Config`].
//!
//! Owns every default, bound and error message about settings. Raw values
//! are all optional strings or numbers as written; flags override the file
//! key by key; validation happens once, before the daemon touches the bus,
//! and names the key at fault. It must not start anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::fail2ban::ProbeConfig;
use crate::fail2ban::codec::DEFAULT_MAX_REPLY;
use crate::fail2ban::probe::DEFAULT_SOCKET;
use crate::monitor::Timing;

/// Where the configuration file is read from when `--config` is not given
/// (only if it exists).
pub const DEFAULT_PATH: &str = "/etc/fail2ban-healthd/config.toml";

/// Longest path a Unix socket address can hold.
const MAX_SOCKET_PATH: usize = 107;

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

/// Settings as written: every one optional. Used for the file and for the
/// flags alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// fail2ban's control socket.
    pub socket: Option<String>,
    /// Time between probes, e.g. `"30s"`.
    pub probe_interval: Option<String>,
    /// Deadline of one probe, e.g. `"5s"`.
    pub probe_timeout: Option<String>,
    /// How long after an activation a failure is attributed to it.
    pub crash_window: Option<String>,
    /// How long a newly activated jail may take to appear.
    pub jail_start_grace: Option<String>,
    /// Time between probes while an activation's window is open.
    pub watch_interval: Option<String>,
    /// How long fail2ban may take to come back after a clean stop.
    pub restart_grace: Option<String>,
    /// Members of this group may manage (besides root).
    pub manage_group: Option<String>,
    /// Members of this group may roll back (besides root).
    pub rollback_group: Option<String>,
    /// Where activations and records are kept across restarts.
    pub state_file: Option<String>,
    /// fail2ban's systemd unit; empty disables following it.
    pub fail2ban_unit: Option<String>,
    /// Whether the instant sources run (the held connection, the socket
    /// watch, the unit watch); without them only the intervals probe.
    pub instant_detection: Option<bool>,
    /// `system` or `session`.
    pub bus: Option<String>,
    /// An explicit bus address; overrides `bus`.
    pub bus_address: Option<String>,
    /// `auto`, `journal` or `stderr`.
    pub log: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: Option<String>,
    /// The drop-in a rollback writes; fail2ban must read it (`jail.d`).
    pub rollback_dropin: Option<String>,
    /// Run after a rollback when fail2ban is up and not a systemd unit.
    pub fail2ban_reload_command: Option<String>,
    /// Run after a rollback when fail2ban is down and not a systemd unit.
    pub fail2ban_start_command: Option<String>,
    /// How long a rollback waits for fail2ban to answer again.
    pub rollback_timeout: Option<String>,
    /// `fail2ban-client` as a program and arguments, for the checks of
    /// `Check` and `Try`.
    pub fail2ban_client_command: Option<String>,
    /// Whether `Try` runs the checks before it reloads fail2ban.
    pub trial_checks: Option<bool>,
    /// A Prometheus text file written after every probe; empty disables.
    pub metrics_file: Option<String>,
}

impl RawConfig {
    /// Parses a TOML document; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Syntax`] with a one-line message naming the line.
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

    /// These settings, each replaced by `over`'s where it has one.
    pub fn overridden_by(self, over: RawConfig) -> RawConfig {
        RawConfig {
            socket: over.socket.or(self.socket),
            probe_interval: over.probe_interval.or(self.probe_interval),
            probe_timeout: over.probe_timeout.or(self.probe_timeout),
            crash_window: over.crash_window.or(self.crash_window),
            jail_start_grace: over.jail_start_grace.or(self.jail_start_grace),
            watch_interval: over.watch_interval.or(self.watch_interval),
            restart_grace: over.restart_grace.or(self.restart_grace),
            manage_group: over.manage_group.or(self.manage_group),
            rollback_group: over.rollback_group.or(self.rollback_group),
            state_file: over.state_file.or(self.state_file),
            fail2ban_unit: over.fail2ban_unit.or(self.fail2ban_unit),
            instant_detection: over.instant_detection.or(self.instant_detection),
            bus: over.bus.or(self.bus),
            bus_address: over.bus_address.or(self.bus_address),
            log: over.log.or(self.log),
            log_level: over.log_level.or(self.log_level),
            rollback_dropin: over.rollback_dropin.or(self.rollback_dropin),
            fail2ban_reload_command: over
                .fail2ban_reload_command
                .or(self.fail2ban_reload_command),
            fail2ban_start_command: over.fail2ban_start_command.or(self.fail2ban_start_command),
            rollback_timeout: over.rollback_timeout.or(self.rollback_timeout),
            fail2ban_client_command: over
                .fail2ban_client_command
                .or(self.fail2ban_client_command),
            trial_checks: over.trial_checks.or(self.trial_checks),
            metrics_file: over.metrics_file.or(self.metrics_file),
        }
    }
}

/// Which bus to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (honours `DBUS_SYSTEM_BUS_ADDRESS`).
    System,
    /// The session bus of the calling user.
    Session,
    /// A bus at this address.
    Address(String),
}

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

/// A group whose members hold a right (`manage_group`, `rollback_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageGroup {
    /// Its name, as configured.
    pub name: String,
    /// Its id, looked up at start.
    pub gid: u32,
}

/// Where the rollback drop-in goes by default.
pub const DEFAULT_ROLLBACK_DROPIN: &str = "/etc/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local";

/// How `Rollback` disables a jail and brings fail2ban back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The one file the daemon writes (and only ever rewrites its own).
    pub dropin: PathBuf,
    /// Program and arguments run when fail2ban is up (no systemd unit).
    pub reload_command: Vec<String>,
    /// Program and arguments run when fail2ban is down (no systemd unit).
    pub start_command: Vec<String>,
    /// How long to wait for fail2ban to answer afterwards.
    pub timeout: Duration,
    /// `fail2ban-client`, for the checks (`-c DIR -t`, `-c DIR -d`).
    pub client_command: Vec<String>,
    /// Whether `Try` runs the checks first.
    pub trial_checks: bool,
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

/// An absolute path to a file, or the key's error.
fn file_path(key: &'static str, raw: &str) -> Result<PathBuf, Error> {
    if raw.starts_with('/') && !raw.ends_with('/') && !raw.contains('\0') {
        Ok(PathBuf::from(raw))
    } else {
        Err(bad(
            key,
            format!("{raw:?} is not an absolute path to a file"),
        ))
    }
}

/// A command line split on whitespace (no shell), or the key's error.
fn command(key: &'static str, raw: Option<&str>, default: &str) -> Result<Vec<String>, Error> {
    let raw = raw.unwrap_or(default);
    let words: Vec<String> = raw.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() || raw.contains('\0') {
        return Err(bad(
            key,
            format!("{raw:?} is not a command (a program and its arguments)"),
        ));
    }
    Ok(words)
}

fn duration(
    key: &'static str,
    raw: Option<&str>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, Error> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let d = humantime::parse_duration(raw.trim()).map_err(|e| {
        bad(
            key,
            format!("{raw:?} is not a duration like \"30s\" or \"1m\" ({e})"),
        )
    })?;
    if d < min || d > max {
        return Err(bad(
            key,
            format!(
                "{raw:?} is out of range ({} to {})",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

impl Config {
    /// Validates raw settings; `lookup_group` resolves a group name to its id.
    ///
    /// # Errors
    /// [`Error::Value`] naming the first key at fault.
    pub fn from_raw(
        raw: &RawConfig,
        lookup_group: impl Fn(&str) -> Option<u32>,
    ) -> Result<Self, Error> {
        let socket = raw.socket.as_deref().unwrap_or(DEFAULT_SOCKET);
        if !socket.starts_with('/') {
            return Err(bad("socket", format!("{socket:?} is not an absolute path")));
        }
        if socket.len() > MAX_SOCKET_PATH || socket.contains('\0') {
            return Err(bad(
                "socket",
                format!("a Unix socket path holds at most {MAX_SOCKET_PATH} bytes and no NUL"),
            ));
        }
        let ms = Duration::from_millis;
        let day = Duration::from_secs(86_400);
        let d = Timing::default();
        let timing = Timing {
            probe_interval: duration(
                "probe_interval",
                raw.probe_interval.as_deref(),
                d.probe_interval,
                ms(100),
                day,
            )?,
            crash_window: duration(
                "crash_window",
                raw.crash_window.as_deref(),
                d.crash_window,
                ms(100),
                day,
            )?,
            jail_start_grace: duration(
                "jail_start_grace",
                raw.jail_start_grace.as_deref(),
                d.jail_start_grace,
                Duration::ZERO,
                day,
            )?,
            watch_interval: duration(
                "watch_interval",
                raw.watch_interval.as_deref(),
                d.watch_interval,
                ms(100),
                day,
            )?,
            restart_grace: duration(
                "restart_grace",
                raw.restart_grace.as_deref(),
                d.restart_grace,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
        };
        if timing.jail_start_grace >= timing.crash_window {
            return Err(bad(
                "jail_start_grace",
                "must be shorter than crash_window, or a missing jail could never be noticed",
            ));
        }
        let probe_timeout = duration(
            "probe_timeout",
            raw.probe_timeout.as_deref(),
            crate::fail2ban::probe::DEFAULT_TIMEOUT,
            ms(10),
            Duration::from_secs(300),
        )?;
        let group =
            |key: &'static str, value: Option<&str>| -> Result<Option<ManageGroup>, Error> {
                match value.map(str::trim) {
                    None | Some("") => Ok(None),
                    Some(name) => {
                        let gid = lookup_group(name)
                            .ok_or_else(|| bad(key, format!("no group named {name:?}")))?;
                        Ok(Some(ManageGroup {
                            name: name.to_owned(),
                            gid,
                        }))
                    }
                }
            };
        let manage_group = group("manage_group", raw.manage_group.as_deref())?;
        let rollback_group = group("rollback_group", raw.rollback_group.as_deref())?;
        let state_file = match raw.state_file.as_deref() {
            None => crate::state::default_path(),
            Some(p) => file_path("state_file", p)?,
        };
        let dropin = file_path(
            "rollback_dropin",
            raw.rollback_dropin
                .as_deref()
                .unwrap_or(DEFAULT_ROLLBACK_DROPIN),
        )?;
        if !dropin.to_string_lossy().ends_with(".local") {
            return Err(bad(
                "rollback_dropin",
                format!(
                    "{:?} does not end in .local: fail2ban reads jail.d/*.local last, so only \
                     there does enabled = false win",
                    dropin.display()
                ),
            ));
        }
        let rollback = Rollback {
            dropin,
            reload_command: command(
                "fail2ban_reload_command",
                raw.fail2ban_reload_command.as_deref(),
                "fail2ban-client reload",
            )?,
            start_command: command(
                "fail2ban_start_command",
                raw.fail2ban_start_command.as_deref(),
                "fail2ban-client start",
            )?,
            timeout: duration(
                "rollback_timeout",
                raw.rollback_timeout.as_deref(),
                Duration::from_secs(15),
                Duration::from_secs(1),
                Duration::from_secs(600),
            )?,
            client_command: command(
                "fail2ban_client_command",
                raw.fail2ban_client_command.as_deref(),
                "fail2ban-client",
            )?,
            trial_checks: raw.trial_checks.unwrap_or(true),
        };
        let metrics_file = match raw.metrics_file.as_deref() {
            None | Some("") => None,
            Some(p) if !p.ends_with(".prom") => {
                return Err(bad(
                    "metrics_file",
                    format!(
                        "{p:?} does not end in .prom, which node_exporter's textfile collector requires"
                    ),
                ));
            }
            Some(p) => Some(file_path("metrics_file", p)?),
        };
        let fail2ban_unit = raw
            .fail2ban_unit
            .clone()
            .unwrap_or_else(|| "fail2ban.service".into());
        let unit_ok = fail2ban_unit.is_empty()
            || (fail2ban_unit.len() <= 255
                && fail2ban_unit.ends_with(".service")
                && fail2ban_unit
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b)));
        if !unit_ok {
            return Err(bad(
                "fail2ban_unit",
                format!("{fail2ban_unit:?} is not a service unit name (or empty to disable)"),
            ));
        }
        // A bad `bus` is an error even where `bus_address` overrides it.
        if let Some(other) = raw
            .bus
            .as_deref()
            .filter(|b| !matches!(*b, "system" | "session"))
        {
            return Err(bad(
                "bus",
                format!("{other:?} is neither \"system\" nor \"session\""),
            ));
        }
        let bus = match (raw.bus_address.as_deref(), raw.bus.as_deref()) {
            (Some(addr), _) if addr.trim().is_empty() || !addr.contains(':') => {
                return Err(bad(
                    "bus_address",
                    format!("{addr:?} is not a D-Bus address like \"unix:path=/run/bus\""),
                ));
            }
            (Some(addr), _) => Bus::Address(addr.to_owned()),
            (None, None | Some("system")) => Bus::System,
            (None, Some("session")) => Bus::Session,
            (None, Some(other)) => {
                return Err(bad(
                    "bus",
                    format!("{other:?} is neither \"system\" nor \"session\""),
                ));
            }
        };
        let log = match raw.log.as_deref() {
            None | Some("auto") => LogTarget::Auto,
            Some("journal") => LogTarget::Journal,
            Some("stderr") => LogTarget::Stderr,
            Some(other) => {
                return Err(bad(
                    "log",
                    format!("{other:?} is not one of auto, journal, stderr"),
                ));
            }
        };
        let log_level = match raw.log_level.as_deref().unwrap_or("info") {
            "error" => tracing::Level::ERROR,
            "warn" => tracing::Level::WARN,
            "info" => tracing::Level::INFO,
            "debug" => tracing::Level::DEBUG,
            "trace" => tracing::Level::TRACE,
            other => {
                return Err(bad(
                    "log_level",
                    format!("{other:?} is not one of error, warn, info, debug, trace"),
                ));
            }
        };
        Ok(Config {
            probe: ProbeConfig {
                socket: PathBuf::from(socket),
                timeout: probe_timeout,
                max_reply: DEFAULT_MAX_REPLY,
            },
            timing,
            manage_group,
            rollback_group,
            state_file,
            fail2ban_unit,
            instant_detection: raw.instant_detection.unwrap_or(true),
            bus,
            log,
            log_level,
            rollback,
            metrics_file,
        })
    }
}

/// Looks a group up in the system's group database.
pub fn system_group(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        let raw = RawConfig::from_toml(text, Path::new("test.toml"))?;
        Config::from_raw(&raw, |n| (n == "adm").then_some(4))
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.probe.socket, PathBuf::from("/run/fail2ban/fail2ban.sock"));
        assert_eq!(c.probe.timeout, Duration::from_secs(5));
        assert_eq!(c.timing, Timing::default());
        assert_eq!(c.bus, Bus::System);
        assert_eq!(c.log, LogTarget::Auto);
        assert_eq!(c.log_level, tracing::Level::INFO);
        assert_eq!(c.manage_group, None);
        assert_eq!(c.rollback_group, None);
        assert_eq!(c.rollback.dropin, PathBuf::from(DEFAULT_ROLLBACK_DROPIN));
        assert_eq!(c.rollback.reload_command, ["fail2ban-client", "reload"]);
        assert_eq!(c.rollback.start_command, ["fail2ban-client", "start"]);
        assert_eq!(c.rollback.client_command, ["fail2ban-client"]);
        assert!(c.rollback.trial_checks);
        assert_eq!(c.rollback.timeout, Duration::from_secs(15));
        assert_eq!(c.metrics_file, None);
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            "socket = \"/tmp/f.sock\"\nprobe_interval = \"1m\"\nprobe_timeout = \"2s 500ms\"\n\
             crash_window = \"2m\"\njail_start_grace = \"10s\"\nmanage_group = \"adm\"\n\
             watch_interval = \"500ms\"\n\
             bus = \"session\"\nlog = \"stderr\"\nlog_level = \"debug\"\n",
        )
        .unwrap();
        assert_eq!(c.probe.socket, PathBuf::from("/tmp/f.sock"));
        assert_eq!(c.timing.probe_interval, Duration::from_secs(60));
        assert_eq!(c.probe.timeout, Duration::from_millis(2500));
        assert_eq!(c.timing.crash_window, Duration::from_secs(120));
        assert_eq!(c.timing.jail_start_grace, Duration::from_secs(10));
        assert_eq!(c.timing.watch_interval, Duration::from_millis(500));
        assert_eq!(
            c.manage_group,
            Some(ManageGroup {
                name: "adm".into(),
                gid: 4
            })
        );
        assert_eq!(c.rollback_group, None, "manage_group grants no rollback");
        assert_eq!(c.bus, Bus::Session);
        assert_eq!(c.log, LogTarget::Stderr);
        assert_eq!(c.log_level, tracing::Level::DEBUG);
        let c = parse(
            "rollback_dropin = \"/tmp/c/jail.d/r.local\"\n\
             fail2ban_reload_command = \"fail2ban-client -c /tmp/c  reload\"\n\
             fail2ban_start_command = \"/usr/bin/fail2ban-client -x start\"\n\
             rollback_timeout = \"5s\"\nmetrics_file = \"/tmp/m/f.prom\"\n",
        )
        .unwrap();
        assert_eq!(c.rollback.dropin, PathBuf::from("/tmp/c/jail.d/r.local"));
        assert_eq!(
            c.rollback.reload_command,
            ["fail2ban-client", "-c", "/tmp/c", "reload"]
        );
        assert_eq!(
            c.rollback.start_command,
            ["/usr/bin/fail2ban-client", "-x", "start"]
        );
        assert_eq!(c.rollback.timeout, Duration::from_secs(5));
        assert_eq!(c.metrics_file, Some(PathBuf::from("/tmp/m/f.prom")));
        let c = parse("rollback_group = \"adm\"\n").unwrap();
        assert_eq!(
            c.rollback_group,
            Some(ManageGroup {
                name: "adm".into(),
                gid: 4
            })
        );
        assert_eq!(c.manage_group, None);
        let c = parse("bus = \"session\"\nbus_address = \"unix:path=/tmp/b\"\n").unwrap();
        assert_eq!(c.bus, Bus::Address("unix:path=/tmp/b".into()));
    }

    #[test]
    fn each_bad_value_names_its_key_on_one_line() {
        for (text, key) in [
            ("probe_interval = \"soon\"", "probe_interval"),
            ("probe_interval = \"1ms\"", "probe_interval"),
            ("probe_timeout = \"0s\"", "probe_timeout"),
            ("crash_window = \"400d\"", "crash_window"),
            ("jail_start_grace = \"2m\"", "jail_start_grace"),
            ("watch_interval = \"1ms\"", "watch_interval"),
            ("socket = \"relative.sock\"", "socket"),
            ("state_file = \"state.json\"", "state_file"),
            ("fail2ban_unit = \"fail2ban\"", "fail2ban_unit"),
            ("manage_group = \"nosuchgroup\"", "manage_group"),
            ("rollback_group = \"nosuchgroup\"", "rollback_group"),
            ("bus = \"tcp\"", "bus"),
            ("bus_address = \"nonsense\"", "bus_address"),
            ("log = \"syslog\"", "log"),
            ("log_level = \"loud\"", "log_level"),
            ("rollback_dropin = \"jail.d/x.local\"", "rollback_dropin"),
            (
                "rollback_dropin = \"/etc/fail2ban/jail.d/x.txt\"",
                "rollback_dropin",
            ),
            (
                "fail2ban_reload_command = \"  \"",
                "fail2ban_reload_command",
            ),
            ("fail2ban_start_command = \"\"", "fail2ban_start_command"),
            ("rollback_timeout = \"0s\"", "rollback_timeout"),
            ("rollback_timeout = \"2h\"", "rollback_timeout"),
            ("fail2ban_client_command = \" \"", "fail2ban_client_command"),
            ("metrics_file = \"metrics.prom\"", "metrics_file"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.starts_with(&format!("{key}: ")), "{text}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        let long = format!("socket = \"/{}\"", "x".repeat(120));
        assert!(
            parse(&long)
                .unwrap_err()
                .to_string()
                .starts_with("socket: ")
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors_with_a_line() {
        let msg = parse("socket = \"/a\"\nfrobnicate = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 2") && msg.contains("frobnicate"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        let msg = parse("probe_interval = 30").unwrap_err().to_string();
        assert!(msg.contains("line 1"), "{msg}");
        assert!(parse("[section]\nx = 1").is_err());
        assert!(parse("not toml at all").is_err());
    }

    #[test]
    fn the_shipped_default_file_gives_the_defaults() {
        let text = include_str!("../systemd/config.toml");
        let c = parse(text).unwrap();
        assert_eq!(c, parse("").unwrap());
        // Each commented-out line, uncommented, is valid and a default.
        for line in text
            .lines()
            .filter(|l| l.starts_with('#') && l.contains(" = "))
        {
            let c2 = parse(&line[1..]).unwrap_or_else(|e| panic!("{line}: {e}"));
            if !line.contains("bus_address") && !line.contains("_group") {
                assert_eq!(c2, c, "{line}");
            }
        }
    }

    #[test]
    fn flags_override_the_file_key_by_key() {
        let file = RawConfig {
            socket: Some("/file.sock".into()),
            probe_interval: Some("10s".into()),
            ..RawConfig::default()
        };
        let flags = RawConfig {
            probe_interval: Some("20s".into()),
            ..RawConfig::default()
        };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.socket.as_deref(), Some("/file.sock"));
        assert_eq!(merged.probe_interval.as_deref(), Some("20s"));
    }
}
