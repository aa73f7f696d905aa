//! What a rollback and a trial are, as the bus and the command line see
//! them: the daemon's own drop-in (its marker and its text), what a
//! rollback did ([`Outcome`]), why it failed ([`Failure`], [`RollbackError`]),
//! why a `Try` started nothing ([`TryError`]), and a trial's time limits.
//!
//! Pure: no I/O, no clock. The daemon (`daemon::rollback`, `daemon::trial`)
//! writes the file and restarts fail2ban; the bus converts these types into
//! its answers and errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::health::valid_jail_name;
use crate::monitor::Refusal;

/// The first line of the drop-in; a file without it is not the daemon's.
pub const MARKER: &str = "# Written by fail2ban-healthd";

/// What a rollback did; the method's `a{sv}` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The jail disabled.
    pub jail: String,
    /// The drop-in written.
    pub dropin: PathBuf,
    /// fail2ban was restarted (or reloaded, or started).
    pub restarted: bool,
    /// fail2ban answered afterwards.
    pub online: bool,
    /// Jails it reported then.
    pub active_jails: u32,
}

/// Why a rollback failed; the text goes to the caller as `RollbackFailed`.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The name is not one that may be written as a section.
    #[error("{0:?} cannot be rolled back: it is not a jail name fail2ban-healthd writes")]
    NotAJail(String),
    /// Someone else's file is where the drop-in goes.
    #[error(
        "{} exists and was not written by fail2ban-healthd (its first line does not start with {MARKER:?}); \
         it was left untouched and nothing was changed",
        .0.display()
    )]
    Foreign(PathBuf),
    /// Reading or writing the drop-in failed.
    #[error("cannot write the drop-in {}: {source}; nothing was changed", path.display())]
    Write {
        /// The drop-in.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// fail2ban cannot be restarted from here.
    #[error("{0}; nothing was changed")]
    NoWayToRestart(String),
    /// It took longer than the rollback's time limit.
    #[error("the rollback did not finish within {0:?}")]
    TimedOut(Duration),
    /// The daemon stopped before the rollback ended.
    #[error(
        "the daemon stopped before the rollback ended; a command it ran was stopped, and the \
         recovery record stays so that the rollback can be asked for again"
    )]
    Stopped,
    /// The rollback's task ended abnormally.
    #[error("the rollback's task failed: {0}")]
    Task(String),
    /// The drop-in is in place but fail2ban did not restart.
    #[error(
        "the jail is disabled in {}, but restarting fail2ban failed: {why}",
        path.display()
    )]
    Restart {
        /// The drop-in.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// Why `Rollback()` did not roll back.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// The monitor refused to start it (no record, a rollback or a trial
    /// running, a jail that ran before its activation).
    #[error("{0}")]
    Refused(Refusal),
    /// It started and failed; the text says what was and was not done.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    ShuttingDown,
}

/// The longest a trial may run.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Why `Try` did not start a trial; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum TryError {
    /// `TrialInProgress`.
    #[error("a trial is running already; confirm or abort it, or wait for its end")]
    TrialInProgress,
    /// `RollbackInProgress`.
    #[error("a rollback is running; try again when it has ended")]
    RollbackInProgress,
    /// `TryFailed`, with the reason.
    #[error("{0}")]
    Failed(String),
    /// `ShuttingDown`.
    #[error("the daemon is stopping")]
    ShuttingDown,
}

impl From<Refusal> for TryError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::TrialRunning => TryError::TrialInProgress,
            Refusal::RollbackRunning => TryError::RollbackInProgress,
            Refusal::JailRunning(jail) => TryError::Failed(format!(
                "jail {jail} is running already: there is nothing to try"
            )),
            other => TryError::Failed(other.to_string()),
        }
    }
}

/// Checks a `Try` timeout: `0` means the crash window.
///
/// # Errors
/// A message for a timeout out of range.
pub fn trial_timeout(usec: u64, crash_window: Duration) -> Result<Duration, String> {
    let t = if usec == 0 {
        crash_window
    } else {
        Duration::from_micros(usec)
    };
    if t < Duration::from_secs(1) || t > MAX_TIMEOUT {
        return Err(format!(
            "a trial's timeout must be between 1 s and {} h (0: the crash window), not {usec} µs",
            MAX_TIMEOUT.as_secs() / 3600
        ));
    }
    Ok(t)
}

/// The jails the daemon's own drop-in text `existing` sets, in order,
/// each with its `enabled` value.
///
/// # Errors
/// [`Failure::Foreign`] when `existing` was not written by the daemon.
pub fn sections(existing: Option<&str>, path: &Path) -> Result<Vec<(String, bool)>, Failure> {
    let mut jails: Vec<(String, bool)> = Vec::new();
    let Some(text) = existing else {
        return Ok(jails);
    };
    if !text.lines().next().is_some_and(|l| l.starts_with(MARKER)) {
        return Err(Failure::Foreign(path.to_owned()));
    }
    let mut current: Option<usize> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = None;
            if valid_jail_name(name) {
                current = Some(match jails.iter().position(|(j, _)| j == name) {
                    Some(i) => i,
                    None => {
                        jails.push((name.to_owned(), false));
                        jails.len() - 1
                    }
                });
            }
        } else if let Some(i) = current
            && let Some(value) = line.strip_prefix("enabled").map(str::trim_start)
            && let Some(value) = value.strip_prefix('=')
        {
            jails[i].1 = value.trim() == "true";
        }
    }
    Ok(jails)
}

fn render(jails: &[(String, bool)]) -> String {
    let mut text = format!(
        "{MARKER}: jails enabled by a trial that was kept, and jails rolled back.\n\
         # fail2ban-healthd rewrites this file on every trial and rollback. To enable a\n\
         # rolled-back jail again, fix it, delete its section here (or this file) and\n\
         # reload fail2ban, or try it again with `fail2ban-healthd try JAIL`.\n"
    );
    for (j, enabled) in jails {
        text.push_str(&format!("\n[{j}]\nenabled = {enabled}\n"));
    }
    text
}

/// Whether `jail` may be written as a section of the drop-in.
///
/// # Errors
/// [`Failure::NotAJail`] for `DEFAULT`, `INCLUDES` and invalid names.
pub fn settable(jail: &str) -> Result<(), Failure> {
    if !valid_jail_name(jail) || matches!(jail, "DEFAULT" | "INCLUDES") {
        return Err(Failure::NotAJail(jail.to_owned()));
    }
    Ok(())
}

/// The drop-in's text with `jail` set to `enabled`, every other jail the
/// daemon's earlier text (`existing`) sets kept as it was.
///
/// # Errors
/// [`Failure::NotAJail`] for a name that is not a plain jail (fail2ban's
/// `DEFAULT` and `INCLUDES` sections would disable or change every jail);
/// [`Failure::Foreign`] when `existing` was not written by the daemon.
pub fn dropin_with(
    existing: Option<&str>,
    jail: &str,
    enabled: bool,
    path: &Path,
) -> Result<String, Failure> {
    settable(jail)?;
    let mut jails = sections(existing, path)?;
    match jails.iter_mut().find(|(j, _)| j == jail) {
        Some(entry) => entry.1 = enabled,
        None => jails.push((jail.to_owned(), enabled)),
    }
    Ok(render(&jails))
}

/// The drop-in's text with `jail` disabled; see [`dropin_with`].
///
/// # Errors
/// As [`dropin_with`].
pub fn dropin_text(existing: Option<&str>, jail: &str, path: &Path) -> Result<String, Failure> {
    dropin_with(existing, jail, false, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/etc/fail2ban/jail.d/zz.local")
    }

    #[test]
    fn a_new_dropin_disables_only_the_jail() {
        let t = dropin_text(None, "nginx-bad", &p()).unwrap();
        assert!(t.starts_with(MARKER));
        assert!(t.ends_with("\n[nginx-bad]\nenabled = false\n"), "{t}");
        assert_eq!(t.matches('[').count(), 1);
    }

    #[test]
    fn earlier_jails_are_kept_once() {
        let first = dropin_text(None, "a", &p()).unwrap();
        let second = dropin_text(Some(&first), "b", &p()).unwrap();
        let third = dropin_text(Some(&second), "a", &p()).unwrap();
        assert_eq!(second, third);
        assert!(second.contains("\n[a]\nenabled = false\n\n[b]\nenabled = false\n"));
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let e = dropin_text(Some("[sshd]\nenabled = true\n"), "a", &p()).unwrap_err();
        assert!(matches!(e, Failure::Foreign(_)), "{e}");
        assert!(e.to_string().contains("left untouched"));
    }

    #[test]
    fn special_sections_are_refused() {
        for name in ["DEFAULT", "INCLUDES", "", "a]b", "x\n[y"] {
            assert!(
                matches!(dropin_text(None, name, &p()), Err(Failure::NotAJail(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn timeouts_are_bounded_and_zero_is_the_window() {
        let w = Duration::from_secs(60);
        assert_eq!(trial_timeout(0, w).unwrap(), w);
        assert_eq!(trial_timeout(5_000_000, w).unwrap(), Duration::from_secs(5));
        assert!(trial_timeout(999_999, w).is_err());
        assert!(trial_timeout(u64::MAX, w).is_err());
    }
}
