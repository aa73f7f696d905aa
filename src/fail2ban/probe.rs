//! One health probe of fail2ban: its version and every jail's counters.
//!
//! Owns the choice of commands. On ONE connection it asks `version`, then
//! `stats` (fail2ban 1.1 and later answer for all jails in one round trip);
//! when `stats` is unknown (code 1, fail2ban 1.0) it falls back to `status`
//! and one `status JAIL short` per jail. It never asks for banned-address
//! lists, which can be huge. One deadline covers the whole probe.

use std::path::PathBuf;
use std::time::Duration;

use super::client::{Connection, Error};
use super::codec;
use crate::health::{JailStats, ServerStatus};

/// Debian's default control socket.
pub const DEFAULT_SOCKET: &str = "/run/fail2ban/fail2ban.sock";

/// Default deadline for one whole probe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// fail2ban's control socket.
    pub socket: PathBuf,
    /// Deadline for the whole probe: connect and every request.
    pub timeout: Duration,
    /// Cap on one reply's size in bytes.
    pub max_reply: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            max_reply: codec::DEFAULT_MAX_REPLY,
        }
    }
}

/// Probes fail2ban once.
///
/// # Errors
/// Any [`Error`]; [`Error::offline_reason`] says how to publish it.
pub async fn probe(config: &ProbeConfig) -> Result<ServerStatus, Error> {
    let mut conn = Connection::connect(&config.socket, config.timeout, config.max_reply).await?;
    let status = probe_on(&mut conn).await?;
    conn.close().await;
    Ok(status)
}

/// Runs the probe's requests on an open connection.
///
/// # Errors
/// Any [`Error`] of the exchanges.
pub async fn probe_on(conn: &mut Connection) -> Result<ServerStatus, Error> {
    let version = codec::parse_version(&conn.request(&["version"]).await?)?;
    let jails = match conn.request(&["stats"]).await {
        Ok(value) => codec::parse_stats(&value)?,
        Err(Error::Server { .. }) => jails_one_by_one(conn).await?,
        Err(e) => return Err(e),
    };
    Ok(ServerStatus { version, jails })
}

async fn jails_one_by_one(conn: &mut Connection) -> Result<Vec<JailStats>, Error> {
    let names = codec::parse_jail_list(&conn.request(&["status"]).await?)?;
    let mut jails = Vec::with_capacity(names.len());
    for name in names {
        match conn.request(&["status", &name, "short"]).await {
            Ok(value) => jails.push(codec::parse_jail_status(&name, &value)?),
            // The jail was stopped between the two requests: it is simply
            // no longer running.
            Err(Error::Server { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    jails.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(jails)
}
