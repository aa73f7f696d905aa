//! How rollbacks and trials act on fail2ban: `rollback_dropin`, the
//! fail2ban commands, `rollback_timeout`, `trial_checks`.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{command, duration, file_path, given};
use super::{Error, Settings, bad};

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

/// The rollback's settings.
pub(super) fn rollback(raw: &Settings) -> Result<Rollback, Error> {
    let dropin = file_path(
        "rollback_dropin",
        &given("rollback_dropin", &raw.rollback_dropin)?,
    )?;
    // fail2ban reads jail.d/*.local last, so only there does the drop-in's
    // `enabled = false` win over the jail's own file.
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
    Ok(Rollback {
        dropin,
        reload_command: command("fail2ban_reload_command", &raw.fail2ban_reload_command)?,
        start_command: command("fail2ban_start_command", &raw.fail2ban_start_command)?,
        timeout: duration(
            "rollback_timeout",
            &raw.rollback_timeout,
            Duration::from_secs(1),
            Duration::from_secs(600),
        )?,
        client_command: command("fail2ban_client_command", &raw.fail2ban_client_command)?,
        trial_checks: given("trial_checks", &raw.trial_checks)?,
    })
}
