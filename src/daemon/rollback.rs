//! `Rollback()`: disables the record's jail in the daemon's own drop-in and
//! brings fail2ban back without it.
//!
//! Steps, each able to fail with a message for the caller:
//! 1. the drop-in (`rollback_dropin`) gets a `[JAIL]` section with
//!    `enabled = false`, written atomically; a file there that the daemon
//!    did not write is never touched;
//! 2. fail2ban restarts: through systemd (`RestartUnit`) when it runs as
//!    its unit, otherwise by the configured reload command (server up) or
//!    start command (server down), run without a shell;
//! 3. the daemon probes until fail2ban answers with its jails settled, or
//!    until `rollback_timeout`.
//!
//! The owner task only marks the start and the end (see
//! [`crate::monitor::Input::RollbackStarted`]), so probing and the bus go on
//! while a rollback waits.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;
use zbus::Connection;

use super::Handle;
use crate::config;
use crate::health::valid_jail_name;
use crate::monitor::Activation;
use crate::systemd::{ManagerProxy, UnitProxy, activating_socket};

/// The first line of the drop-in; a file without it is not the daemon's.
pub const MARKER: &str = "# Written by fail2ban-healthd";

/// How a rollback is done.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The drop-in, the commands and the timeout.
    pub rollback: config::Rollback,
    /// fail2ban's systemd unit, or empty.
    pub unit: String,
    /// fail2ban's control socket, to find a `.socket` unit listening on it.
    pub socket: PathBuf,
}

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

/// The jails the daemon's own drop-in text `existing` sets, in order,
/// each with its `enabled` value.
///
/// # Errors
/// [`Failure::Foreign`] when `existing` was not written by the daemon.
fn sections(existing: Option<&str>, path: &Path) -> Result<Vec<(String, bool)>, Failure> {
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

fn settable(jail: &str) -> Result<(), Failure> {
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

/// Reads the drop-in; `None` when there is none.
pub(super) fn read_dropin(path: &Path) -> Result<Option<String>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Failure::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// What a rollback does to the drop-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// `Rollback()`: `[JAIL] enabled = false`.
    Disable,
    /// A trial's rollback: the drop-in exactly as it was before the trial
    /// (`None`: no file).
    Restore(Option<String>),
}

/// Changes the drop-in as `undo` says, for `jail`. A file there that the
/// daemon did not write is never touched.
async fn write_dropin(path: PathBuf, jail: String, undo: Undo) -> Result<PathBuf, Failure> {
    tokio::task::spawn_blocking(move || {
        let io = |source| Failure::Write {
            path: path.clone(),
            source,
        };
        let existing = read_dropin(&path)?;
        let text = match undo {
            Undo::Disable => Some(dropin_text(existing.as_deref(), &jail, &path)?),
            Undo::Restore(before) => {
                settable(&jail)?;
                sections(existing.as_deref(), &path)?;
                before
            }
        };
        match text {
            Some(text) if existing.as_deref() != Some(text.as_str()) => {
                crate::atomic::write(&path, text.as_bytes(), 0o644).map_err(io)?;
            }
            Some(_) => {}
            None if existing.is_some() => std::fs::remove_file(&path).map_err(io)?,
            None => {}
        }
        Ok(path)
    })
    .await
    .map_err(|e| Failure::Write {
        path: PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// How fail2ban is brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Restart {
    /// Through systemd, as its unit.
    Unit,
    /// With the configured commands.
    Commands,
}

/// Whether this process runs as a systemd service (its own sandbox then
/// applies to any command it starts).
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some()
}

/// How to bring fail2ban back: as `unit` when systemd knows it and it is
/// not merely installed and switched off (running, failed, or enabled), or
/// whenever this daemon is itself a systemd service (a server started by a
/// command would run inside this daemon's sandbox and cgroup); otherwise
/// with the commands.
pub(super) async fn how_to_restart(
    conn: &Connection,
    unit: &str,
    socket: &Path,
) -> Result<Restart, Failure> {
    let sandboxed = under_systemd();
    let refuse = || {
        Failure::NoWayToRestart(format!(
            "fail2ban-healthd runs as a systemd service and fail2ban is not a systemd unit it \
             knows ({}): a server it started would run inside its sandbox; set fail2ban_unit",
            if unit.is_empty() {
                "fail2ban_unit is empty"
            } else {
                unit
            }
        ))
    };
    if unit.is_empty() {
        return if sandboxed {
            Err(refuse())
        } else {
            Ok(Restart::Commands)
        };
    }
    let check = async {
        let manager = ManagerProxy::new(conn).await?;
        let path = manager.load_unit(unit).await?;
        let u = UnitProxy::builder(conn)
            .path(path)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let loaded = u.load_state().await? == "loaded";
        let state = u.active_state().await?;
        let file_state = u.unit_file_state().await.unwrap_or_default();
        let activated = activating_socket(conn, &manager, &u, socket)
            .await?
            .is_some();
        let in_use = state != "inactive"
            || file_state.starts_with("enabled")
            || file_state == "static"
            || activated;
        zbus::Result::Ok(loaded && (in_use || sandboxed))
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(true)) => Ok(Restart::Unit),
        Ok(Ok(false)) | Err(_) if !sandboxed => Ok(Restart::Commands),
        Ok(Err(e)) if !sandboxed => {
            tracing::debug!(unit, error = %e, "rollback_no_systemd_unit");
            Ok(Restart::Commands)
        }
        _ => Err(refuse()),
    }
}

/// Restarts `unit` and waits for systemd's job to end. Under socket
/// activation the `.socket` unit that listens on `socket` is reset and
/// started first, so that both units end up as they should be: the socket
/// listening, the service active.
async fn restart_unit(
    conn: &Connection,
    unit: &str,
    socket: &Path,
    deadline: Instant,
) -> Result<(), String> {
    let (manager, mut removed) = job_watch(conn).await?;
    let service = unit_proxy(conn, &manager, unit).await?;
    let socket_unit = activating_socket(conn, &manager, &service, socket)
        .await
        .map_err(|e| e.to_string())?;
    // A failed unit may also have hit its start rate limit. The service is
    // reset first: resetting a service that hit its limit fails a socket
    // that already listens again (service-start-limit-hit).
    let _ = manager.reset_failed_unit(unit).await;
    if let Some((name, _)) = &socket_unit {
        tracing::info!(unit, socket_unit = %name, "rollback_socket_activated");
        // A failed socket listens again only once reset.
        let _ = manager.reset_failed_unit(name).await;
        let job = manager
            .start_unit(name, "replace")
            .await
            .map_err(|e| format!("systemd refused to start {name}: {e}"))?;
        wait_job(&mut removed, &job, name, deadline).await?;
    }
    let before = service.invocation_id().await.unwrap_or_default();
    let job = manager
        .restart_unit(unit, "replace")
        .await
        .map_err(|e| format!("systemd refused to restart {unit}: {e}"))?;
    if let Err(why) = wait_job(&mut removed, &job, unit, deadline).await {
        // A job that failed may still end with a new server running: a
        // fail2ban whose reload stopped every jail may fail its stop, and
        // the unit's own Restart= starts it again. A new invocation,
        // active, is what counts; anything else is the job's failure.
        if !restarted_since(&service, &before, deadline).await {
            return Err(why);
        }
        tracing::warn!(unit, error = %why, "rollback_restart_job_failed_unit_restarted");
    }
    // A job that is done says the start was queued and began; the states
    // say whether both units are where they should be.
    let mut expected = vec![(unit.to_owned(), service)];
    if let Some((name, _)) = socket_unit {
        let proxy = unit_proxy(conn, &manager, &name).await?;
        expected.push((name, proxy));
    }
    for (name, proxy) in expected {
        let state = proxy.active_state().await.map_err(|e| e.to_string())?;
        if state != "active" {
            return Err(format!("{name} is {state} after its restart"));
        }
    }
    Ok(())
}

/// Waits until `unit` is active in an invocation other than `before`, or
/// until `deadline`; whether it is.
async fn restarted_since(unit: &UnitProxy<'_>, before: &[u8], deadline: Instant) -> bool {
    loop {
        let active = unit.active_state().await.is_ok_and(|s| s == "active");
        let invocation = unit.invocation_id().await.unwrap_or_default();
        if active && !invocation.is_empty() && invocation != before {
            return true;
        }
        if Instant::now() + Duration::from_millis(100) >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// systemd's manager, subscribed, with the stream of ended jobs opened
/// before any job is asked for.
pub(super) async fn job_watch(
    conn: &Connection,
) -> Result<(ManagerProxy<'static>, crate::systemd::JobRemovedStream), String> {
    let manager = ManagerProxy::new(conn).await.map_err(|e| e.to_string())?;
    // The unit watch may have subscribed this connection already
    // (AlreadySubscribed): either way systemd sends the job's end.
    if let Err(e) = manager.subscribe().await {
        tracing::debug!(error = %e, "systemd_subscribe");
    }
    let removed = manager
        .receive_job_removed()
        .await
        .map_err(|e| e.to_string())?;
    Ok((manager, removed))
}

pub(super) async fn unit_proxy<'a>(
    conn: &Connection,
    manager: &ManagerProxy<'_>,
    unit: &str,
) -> Result<UnitProxy<'a>, String> {
    let path = manager.load_unit(unit).await.map_err(|e| e.to_string())?;
    UnitProxy::builder(conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// Waits until systemd removes `job`, which must end `done`.
pub(super) async fn wait_job(
    removed: &mut crate::systemd::JobRemovedStream,
    job: &zbus::OwnedObjectPath,
    unit: &str,
    deadline: Instant,
) -> Result<(), String> {
    let wait = async {
        while let Some(signal) = removed.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job() == job {
                return Some(args.result().clone());
            }
        }
        None
    };
    match tokio::time::timeout_at(deadline, wait).await {
        Ok(Some(result)) if result == "done" => Ok(()),
        Ok(Some(result)) => Err(format!("systemd's job for {unit} ended with {result:?}")),
        Ok(None) => Err("lost systemd's signals".into()),
        Err(_) => Err(format!("systemd's job for {unit} did not end in time")),
    }
}

/// Runs `argv` (no shell) and waits for it until `deadline`.
pub(super) async fn run_command(argv: &[String], deadline: Instant) -> Result<(), String> {
    run_command_checked(argv, deadline)
        .await
        .and_then(|ran| ran)
}

/// Runs `argv` (no shell) and waits for it until `deadline`: `Err` when it
/// could not be started, `Ok(Err)` when it ran and failed.
pub(super) async fn run_command_checked(
    argv: &[String],
    deadline: Instant,
) -> Result<Result<(), String>, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // A server the command starts may keep the pipe open: read a bounded
    // amount in the background, and stop reading once the command ends.
    let mut stderr = child.stderr.take();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(16 * 1024).read_to_end(&mut out).await;
        }
        out
    });
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Ok(Err(format!("{program}: {e}"))),
        Err(_) => {
            let _ = child.kill().await;
            return Ok(Err(format!("{} did not finish in time", argv.join(" "))));
        }
    };
    let abort = reader.abort_handle();
    let output = tokio::time::timeout(Duration::from_millis(200), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    // A server that kept the pipe open must not keep a task reading it.
    abort.abort();
    if status.success() {
        return Ok(Ok(()));
    }
    let text = String::from_utf8_lossy(&output);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    Ok(Err(format!(
        "{} ended with {status}{}{last}",
        argv.join(" "),
        if last.is_empty() { "" } else { ": " }
    )))
}

/// Probes until fail2ban answers and its jail list holds still for one
/// probe (a starting server lists its jails shortly after it answers), or
/// until `deadline`. Returns whether it answered and its jail count.
async fn wait_for_fail2ban(daemon: &Handle, deadline: Instant) -> (bool, u32) {
    const EVERY: Duration = Duration::from_millis(100);
    const SETTLE_AT_MOST: Duration = Duration::from_secs(1);
    let mut first_online: Option<Instant> = None;
    let mut previous: Option<Vec<String>> = None;
    loop {
        let online = daemon.probe_fresh().await.unwrap_or(false);
        let s = daemon.snapshot();
        if online && s.online {
            let names: Vec<String> = s.jails.iter().map(|j| j.name.clone()).collect();
            let since = *first_online.get_or_insert_with(Instant::now);
            if previous.as_ref() == Some(&names) && !names.is_empty()
                || since.elapsed() >= SETTLE_AT_MOST
            {
                return (true, crate::bus::values::active_jails(&s));
            }
            previous = Some(names);
        } else {
            first_online = None;
            previous = None;
        }
        if Instant::now() + EVERY >= deadline {
            let s = daemon.snapshot();
            return (s.online, crate::bus::values::active_jails(&s));
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Rolls `jail` back; `uid` is the caller, for the journal.
///
/// # Errors
/// A [`Failure`] saying what was and was not done.
async fn perform(
    settings: &Settings,
    conn: &Connection,
    daemon: &Handle,
    jail: &str,
    uid: u32,
    deadline: Instant,
    undo: Undo,
) -> Result<Outcome, Failure> {
    let path = settings.rollback.dropin.clone();
    tracing::warn!(jail, uid, dropin = %path.display(), "rollback_started");
    // Nothing is written unless fail2ban can be brought back from here.
    let how = how_to_restart(conn, &settings.unit, &settings.socket).await?;
    let path = write_dropin(path, jail.to_owned(), undo).await?;
    let restart = match how {
        Restart::Unit => {
            tracing::info!(unit = %settings.unit, "rollback_restarting_unit");
            restart_unit(conn, &settings.unit, &settings.socket, deadline).await
        }
        Restart::Commands => {
            let online = daemon.probe_fresh().await.unwrap_or(false);
            let argv = if online {
                &settings.rollback.reload_command
            } else {
                &settings.rollback.start_command
            };
            tracing::info!(command = %argv.join(" "), "rollback_running_command");
            run_command(argv, deadline).await
        }
    };
    if let Err(why) = restart {
        return Err(Failure::Restart { path, why });
    }
    let (online, active_jails) = wait_for_fail2ban(daemon, deadline).await;
    Ok(Outcome {
        jail: jail.to_owned(),
        dropin: path,
        restarted: true,
        online,
        active_jails,
    })
}

/// Marks the rollback finished when dropped, however its task ends.
struct Finish {
    daemon: Handle,
    activation: Option<Activation>,
    done: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(activation) = self.activation.take() {
            self.daemon.finish_rollback(activation, self.done);
        }
    }
}

/// Runs the rollback of `activation`'s jail, started by `uid`, in a task of
/// its own: it ends, and is marked ended, even if the caller goes away,
/// and within the rollback's time limit (plus the time systemd and polkit
/// may take). The record is marked rolled back only when fail2ban
/// answered afterwards, so a rollback after which fail2ban stays down can
/// be tried again.
///
/// # Errors
/// A [`Failure`] saying what was and was not done.
pub async fn run(
    settings: Settings,
    conn: Connection,
    daemon: Handle,
    activation: Activation,
    uid: u32,
    undo: Undo,
) -> Result<Outcome, Failure> {
    let task = tokio::spawn(async move {
        let mut finish = Finish {
            daemon: daemon.clone(),
            activation: Some(activation.clone()),
            done: false,
        };
        let limit = settings.rollback.timeout + Duration::from_secs(10);
        let deadline = Instant::now() + settings.rollback.timeout;
        let jail = activation.jail_name.as_str();
        let result = tokio::time::timeout(
            limit,
            perform(&settings, &conn, &daemon, jail, uid, deadline, undo),
        )
        .await
        .unwrap_or(Err(Failure::TimedOut(limit)));
        match &result {
            Ok(o) => tracing::warn!(
                jail,
                uid,
                dropin = %o.dropin.display(),
                online = o.online,
                active_jails = o.active_jails,
                "rollback_done"
            ),
            Err(e) => tracing::error!(jail, uid, error = %e, "rollback_failed"),
        }
        finish.done = result.as_ref().is_ok_and(|o| o.online);
        drop(finish);
        result
    });
    task.await
        .unwrap_or_else(|e| Err(Failure::Task(e.to_string())))
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
}
