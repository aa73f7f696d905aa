//! The `probe` subcommand: one probe of fail2ban, printed as a table or
//! JSON, without the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::client::table::render_table;
use crate::fail2ban::{self, ProbeConfig, codec, probe::DEFAULT_SOCKET};
use crate::health::{JailStats, OfflineReason, ServerStatus};
use crate::text::error_chain;

/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The longest probe deadline accepted, in seconds.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

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
