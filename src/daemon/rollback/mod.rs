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
//! Files: `dropin` (step 1), `restart` and `job` (step 2 through systemd),
//! `command` (step 2 with commands); this file runs the steps in a named
//! task of its own, waits for fail2ban (step 3), and says what a stop of
//! the daemon does to a running rollback ([`Rollbacks::run`]). What a
//! rollback did and why it failed are domain types of [`crate::rollback`].
//!
//! The owner task only marks the start and the end (see
//! [`crate::monitor::Input::RollbackStarted`]), so probing and the bus go on
//! while a rollback waits.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use zbus::Connection;

use super::handle::Handle;
use super::tasks::{Stop, Tasks};
use crate::config;
use crate::monitor::Activation;
pub use crate::rollback::{Failure, MARKER, Outcome, dropin_text, dropin_with};

mod command;
mod dropin;
mod job;
mod restart;

pub(super) use command::{run_command, run_command_checked};
pub use dropin::Undo;
pub(super) use dropin::read_dropin;
use dropin::write_dropin;
pub(super) use job::{job_watch, wait_job};
use restart::restart_unit;
pub(super) use restart::{Restart, how_to_restart};

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
                return (true, jail_count(&s));
            }
            previous = Some(names);
        } else {
            first_online = None;
            previous = None;
        }
        if Instant::now() + EVERY >= deadline {
            let s = daemon.snapshot();
            return (s.online, jail_count(&s));
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

/// How long a running rollback may go on once the daemon is stopping,
/// before it is cancelled; shorter than [`super::tasks::DEADLINE`], so
/// that `run()` sees it end.
pub const STOP_GRACE: Duration = Duration::from_secs(4);

/// What every rollback needs from the daemon: its settings, the owner
/// task, the task list and the stop signal.
#[derive(Debug, Clone)]
pub struct Rollbacks {
    /// How a rollback is done.
    pub settings: Settings,
    /// The owner task.
    pub daemon: Handle,
    /// Where rollbacks run, by name.
    pub tasks: Tasks,
    /// The daemon's stop signal.
    pub stop: Stop,
}

impl Rollbacks {
    /// Runs the rollback of `activation`'s jail, started by `uid`, in a
    /// task of its own: it ends, and is marked ended, even if the caller
    /// goes away, and within the rollback's time limit (plus the time
    /// systemd and polkit may take). The record is marked rolled back only
    /// when fail2ban answered afterwards, so a rollback after which
    /// fail2ban stays down can be tried again.
    ///
    /// When the daemon stops, a running rollback gets [`STOP_GRACE`] to
    /// end, then is cancelled: a command it waits for is killed, a systemd
    /// job it asked for goes on in systemd, and a drop-in being written is
    /// still replaced whole (the write runs on a blocking thread). The
    /// record stays unrolled, so the rollback can be asked for again.
    ///
    /// # Errors
    /// A [`Failure`] saying what was and was not done.
    pub async fn run(
        &self,
        conn: Connection,
        activation: Activation,
        uid: u32,
        undo: Undo,
    ) -> Result<Outcome, Failure> {
        self.spawn(conn, activation, uid, undo)
            .await
            .unwrap_or_else(|e| Err(Failure::Task(e.to_string())))
    }

    /// Starts [`Rollbacks::run`]'s task and returns at once.
    pub fn spawn(
        &self,
        conn: Connection,
        activation: Activation,
        uid: u32,
        undo: Undo,
    ) -> tokio::task::JoinHandle<Result<Outcome, Failure>> {
        let name = format!("rollback of jail {}", activation.jail_name);
        let this = self.clone();
        self.tasks.spawn(name, async move {
            let mut finish = Finish {
                daemon: this.daemon.clone(),
                activation: Some(activation.clone()),
                done: false,
            };
            let jail = activation.jail_name.as_str();
            let result = this.bounded(&conn, jail, uid, undo).await;
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
        })
    }

    /// [`perform`] under the rollback's time limit and the stop signal.
    async fn bounded(
        &self,
        conn: &Connection,
        jail: &str,
        uid: u32,
        undo: Undo,
    ) -> Result<Outcome, Failure> {
        let settings = &self.settings;
        let limit = settings.rollback.timeout + Duration::from_secs(10);
        let deadline = Instant::now() + settings.rollback.timeout;
        let work = perform(settings, conn, &self.daemon, jail, uid, deadline, undo);
        let mut stop = self.stop.clone();
        let stopped = async {
            stop.stopped().await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        tokio::select! {
            result = tokio::time::timeout(limit, work) => {
                result.unwrap_or(Err(Failure::TimedOut(limit)))
            }
            () = stopped => Err(Failure::Stopped),
        }
    }
}

fn jail_count(s: &crate::monitor::Snapshot) -> u32 {
    u32::try_from(s.jails.len()).unwrap_or(u32::MAX)
}
