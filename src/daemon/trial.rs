//! `Check(JAIL)` and `Try(JAIL)`: fail2ban's own checks for a jail as if
//! it were enabled, and an activation that the daemon rolls back by itself
//! when a failure is attributed to it before its deadline.
//!
//! `Try`, step by step:
//! 1. the one trial slot is claimed in the monitor (refused while a trial
//!    or a rollback runs, while fail2ban is unhealthy, or for a jail that
//!    runs already);
//! 2. the daemon makes sure it can reload fail2ban at all, and that the
//!    drop-in is its own;
//! 3. the checks run on a private copy of fail2ban's configuration with
//!    the trial's line in place (unless `trial_checks` is off): a failure
//!    answers `TryFailed`, and nothing was written;
//! 4. the trial starts in the monitor (registering the activation, and
//!    remembering the drop-in as it was), then `[JAIL] enabled = true` is
//!    written, atomically;
//! 5. fail2ban is reloaded, through systemd when it is a unit, otherwise
//!    with the reload command. A reload that ran and failed leaves the
//!    verdict to the monitor; one that could not even start puts the
//!    drop-in back and answers `TryFailed`.
//!
//! From then on the monitor watches (see [`crate::monitor`], "Trials"),
//! and asks for the rollback when it is due.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use zbus::Connection;

use super::handle::Handle;
use super::rollback::{self, Failure, Restart, Settings};
use crate::fail2ban::check::{CheckReport, CheckSettings};
use crate::rollback::TryError;

/// The longest a trial may run (kept here for the command line).
pub use crate::rollback::MAX_TIMEOUT;

/// The longest the checks may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// fail2ban's configuration directory: the one whose `jail.d` holds the
/// drop-in.
fn config_dir(dropin: &Path) -> Result<PathBuf, String> {
    dropin
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "jail.d"))
        .and_then(Path::parent)
        .map(Path::to_owned)
        .ok_or_else(|| {
            format!(
                "the drop-in {} is not in a jail.d directory, so fail2ban's configuration \
                 directory is not known",
                dropin.display()
            )
        })
}

/// The drop-in's text with `jail` enabled, and the text before.
async fn trial_text(settings: &Settings, jail: &str) -> Result<(Option<String>, String), String> {
    let path = settings.rollback.dropin.clone();
    let jail = jail.to_owned();
    tokio::task::spawn_blocking(move || {
        let before = rollback::read_dropin(&path).map_err(|e| e.to_string())?;
        let text = rollback::dropin_with(before.as_deref(), &jail, true, &path)
            .map_err(|e| e.to_string())?;
        Ok((before, text))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs fail2ban's checks for `jail` with `dropin_text` in place, on a
/// private copy of its configuration.
async fn run_checks(
    settings: &Settings,
    jail: &str,
    dropin_text: &str,
) -> Result<CheckReport, String> {
    let check = CheckSettings {
        config_dir: config_dir(&settings.rollback.dropin)?,
        dropin: settings.rollback.dropin.clone(),
        client_command: settings.rollback.client_command.clone(),
        timeout: CHECK_TIMEOUT,
    };
    crate::fail2ban::check::check(&check, jail, dropin_text)
        .await
        .map_err(|e| format!("fail2ban's checks could not run: {e}"))
}

/// `Check(JAIL)`: the checks as `Try` would run them; nothing is written.
/// Checks that could not run (a foreign drop-in, no `fail2ban-client`)
/// did not pass: the report says why.
pub async fn check(settings: &Settings, jail: &str) -> CheckReport {
    let report = match trial_text(settings, jail).await {
        Ok((_, text)) => run_checks(settings, jail, &text).await,
        Err(e) => Err(e),
    };
    report.unwrap_or_else(|why| CheckReport {
        ok: false,
        messages: vec![crate::text::clean(&why, 1000).into_owned()],
    })
}

/// How long `Try` waits for the trial to reach the state file.
const SAVE_LIMIT: Duration = Duration::from_secs(10);

/// Frees the claimed trial slot unless disarmed, however `Try` ends.
struct Claim {
    daemon: Handle,
    armed: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.armed {
            self.daemon.cancel_trial();
        }
    }
}

/// `Try(JAIL)`; answers with the trial's start. `uid` is the caller, for
/// the journal.
///
/// # Errors
/// [`TryError`] saying why nothing was started.
pub async fn start(
    settings: &Settings,
    conn: &Connection,
    daemon: &Handle,
    jail: &str,
    timeout: Duration,
    uid: u32,
) -> Result<DateTime<Utc>, TryError> {
    daemon
        .claim_trial(jail.to_owned())
        .await
        .ok_or(TryError::ShuttingDown)??;
    let mut claim = Claim {
        daemon: daemon.clone(),
        armed: true,
    };
    let how = rollback::how_to_restart(conn, &settings.unit, &settings.socket)
        .await
        .map_err(|e| TryError::Failed(format!("fail2ban cannot be reloaded from here: {e}")))?;
    let (before, text) = trial_text(settings, jail).await.map_err(TryError::Failed)?;
    if settings.rollback.trial_checks {
        let report = run_checks(settings, jail, &text)
            .await
            .map_err(TryError::Failed)?;
        if !report.ok {
            tracing::warn!(jail, uid, messages = %report.messages.join(" | "), "trial_check_failed");
            return Err(TryError::Failed(format!(
                "fail2ban's checks failed for jail {jail}; nothing was changed: {}",
                report.messages.join("; ")
            )));
        }
    }
    let started_at = daemon
        .start_trial(jail.to_owned(), timeout, before.clone())
        .await
        .ok_or(TryError::ShuttingDown)??;
    // The trial now owns the slot; a failure from here on ends it.
    claim.armed = false;
    recorded(daemon, jail, started_at).await?;
    let path = settings.rollback.dropin.clone();
    tracing::warn!(
        jail,
        uid,
        timeout_seconds = timeout.as_secs_f64(),
        dropin = %path.display(),
        "trial_started"
    );
    if let Err(e) = write(&path, &text).await {
        daemon.cancel_trial();
        return Err(TryError::Failed(e.to_string()));
    }
    let deadline = Instant::now() + settings.rollback.timeout;
    match reload(settings, conn, how, deadline).await {
        Ok(Ok(())) => tracing::info!(jail, "trial_reloaded"),
        Ok(Err(why)) => {
            // It ran and failed: fail2ban may be changed (an invalid
            // regex stops every jail), so the monitor judges and the
            // rollback restarts it.
            tracing::warn!(jail, error = %why, "trial_reload_failed");
        }
        Err(why) => {
            let restored = restore(&path, before).await;
            daemon.cancel_trial();
            return Err(TryError::Failed(format!(
                "fail2ban cannot be reloaded: {why}; {}",
                match restored {
                    Ok(()) => "the drop-in was put back as it was".to_owned(),
                    Err(e) => format!("and putting the drop-in back failed: {e}"),
                }
            )));
        }
    }
    Ok(started_at)
}

/// Waits until the trial is in the state file, before its drop-in
/// changes: a daemon killed in between would otherwise come back knowing
/// nothing of a jail it enabled. Ends the trial if it cannot be recorded.
async fn recorded(daemon: &Handle, jail: &str, started_at: DateTime<Utc>) -> Result<(), TryError> {
    let on_disk = |m: &crate::monitor::Memory| {
        m.trial
            .as_ref()
            .is_some_and(|t| t.jail_name == jail && t.started_at == started_at)
    };
    if daemon.saved(on_disk, SAVE_LIMIT).await {
        return Ok(());
    }
    daemon.cancel_trial();
    Err(TryError::Failed(format!(
        "the trial could not be recorded in the state file within {} s; nothing was changed",
        SAVE_LIMIT.as_secs()
    )))
}

async fn write(path: &Path, text: &str) -> Result<(), Failure> {
    let path = path.to_owned();
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || {
        crate::atomic::write(&path, text.as_bytes(), 0o644)
            .map_err(|source| Failure::Write { path, source })
    })
    .await
    .map_err(|e| Failure::Task(e.to_string()))?
}

async fn restore(path: &Path, before: Option<String>) -> Result<(), Failure> {
    match before {
        Some(text) => write(path, &text).await,
        None => {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Failure::Write { path, source: e })
                }
                _ => Ok(()),
            })
            .await
            .map_err(|e| Failure::Task(e.to_string()))?
        }
    }
}

/// Reloads fail2ban: `Err` when the reload could not be started at all,
/// `Ok(Err)` when it ran and failed.
async fn reload(
    settings: &Settings,
    conn: &Connection,
    how: Restart,
    deadline: Instant,
) -> Result<Result<(), String>, String> {
    match how {
        Restart::Unit => reload_unit(conn, &settings.unit, deadline).await,
        Restart::Commands => {
            let argv = &settings.rollback.reload_command;
            tracing::info!(command = %argv.join(" "), "trial_running_reload_command");
            rollback::run_command_checked(argv, deadline).await
        }
    }
}

/// `ReloadUnit`, waiting for systemd's job to end.
async fn reload_unit(
    conn: &Connection,
    unit: &str,
    deadline: Instant,
) -> Result<Result<(), String>, String> {
    let (manager, mut removed) = rollback::job_watch(conn).await?;
    tracing::info!(unit, "trial_reloading_unit");
    let job = manager
        .reload_unit(unit, "replace")
        .await
        .map_err(|e| format!("systemd refused to reload {unit}: {e}"))?;
    Ok(rollback::wait_job(&mut removed, &job, unit, deadline).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_dir_is_the_one_above_jail_d() {
        assert_eq!(
            config_dir(Path::new("/etc/fail2ban/jail.d/zz.local")).unwrap(),
            Path::new("/etc/fail2ban")
        );
        assert!(config_dir(Path::new("/etc/fail2ban/zz.local")).is_err());
    }
}
