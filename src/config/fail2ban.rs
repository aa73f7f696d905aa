//! How fail2ban is reached and followed: `socket`, `probe_timeout`,
//! `fail2ban_unit`, `instant_detection`.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{duration, given};
use super::{Error, Settings, bad};
use crate::fail2ban::ProbeConfig;
use crate::fail2ban::codec::DEFAULT_MAX_REPLY;

/// Longest path a Unix socket address can hold.
const MAX_SOCKET_PATH: usize = 107;

/// The probe's socket and deadline.
pub(super) fn probe(raw: &Settings) -> Result<ProbeConfig, Error> {
    let socket = given("socket", &raw.socket)?;
    if !socket.starts_with('/') {
        return Err(bad("socket", format!("{socket:?} is not an absolute path")));
    }
    if socket.len() > MAX_SOCKET_PATH || socket.contains('\0') {
        return Err(bad(
            "socket",
            format!("a Unix socket path holds at most {MAX_SOCKET_PATH} bytes and no NUL"),
        ));
    }
    let timeout = duration(
        "probe_timeout",
        &raw.probe_timeout,
        Duration::from_millis(10),
        Duration::from_secs(300),
    )?;
    Ok(ProbeConfig {
        socket: PathBuf::from(socket),
        timeout,
        max_reply: DEFAULT_MAX_REPLY,
    })
}

/// fail2ban's systemd unit: a service unit's name, or empty.
pub(super) fn unit(raw: &Settings) -> Result<String, Error> {
    let unit = given("fail2ban_unit", &raw.fail2ban_unit)?;
    let ok = unit.is_empty()
        || (unit.len() <= 255
            && unit.ends_with(".service")
            && unit
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b)));
    if !ok {
        return Err(bad(
            "fail2ban_unit",
            format!("{unit:?} is not a service unit name (or empty to disable)"),
        ));
    }
    Ok(unit)
}

/// Whether the instant sources of detection run.
pub(super) fn instant_detection(raw: &Settings) -> Result<bool, Error> {
    given("instant_detection", &raw.instant_detection)
}
