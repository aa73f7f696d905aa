//! `fail2ban-healthd run`: the owner task, its handle, the publishers and
//! the shutdown path.
//!
//! Layout:
//! - this file: [`run`] wires the bus, the owner task and the publisher,
//!   and stops them on SIGTERM/SIGINT or when the bus goes away;
//! - `owner`: the one task that owns the monitor and the fail2ban
//!   connection; everything else talks to it through a [`Handle`];
//! - `publish`: signals and batched `PropertiesChanged` on the bus;
//! - `notify`: systemd's notify socket (READY, STATUS, WATCHDOG, STOPPING);
//! - `persist`: the state file, written after every change;
//! - `socket_watch`: inotify on the socket's path, to see fail2ban return;
//! - `unit_watch`: fail2ban's systemd unit (and its `.socket`), to tell a
//!   restart from a crash and, under socket activation, when not to connect;
//! - `rollback`: `Rollback()`, the drop-in and fail2ban's restart;
//! - `trial`: `Check()` and `Try()`: the checks, the trial's line, the
//!   reload (the monitor judges the trial and asks for its rollback);
//! - `metrics`: the Prometheus text file, written after every probe.

mod metrics;
mod notify;
mod owner;
mod persist;
mod publish;
pub mod rollback;
mod socket_watch;
pub mod trial;
mod unit_watch;

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::auth::{Authorizer, Groups};
use crate::bus::interface::{Constants, Health};
use crate::bus::{NAME, PATH};
use crate::config::{Bus, Config};
use crate::monitor::{Activation, Input, Refusal, Snapshot, Trial};

/// A request to the owner task; each carries the channel for its answer.
#[derive(Debug)]
pub enum Command {
    /// Register an activation; answers with its time.
    RegisterActivation {
        /// The validated jail name.
        jail: String,
        /// Where the answer goes.
        reply: oneshot::Sender<DateTime<Utc>>,
    },
    /// Clear the recovery record.
    DismissRecovery {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// Probe now; answers with `online` once the snapshot reflects it.
    Probe {
        /// A probe that ended less than a second ago answers (`Probe()`
        /// from the bus); false for the daemon's own waits, which must see
        /// a probe made after they asked.
        floor: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<bool>,
    },
    /// Mark a rollback started; answers with the record's activation.
    BeginRollback {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Activation, Refusal>>,
    },
    /// Mark the rollback ended.
    FinishRollback {
        /// The activation it was for.
        activation: Activation,
        /// Whether the jail was disabled and fail2ban answered afterwards.
        done: bool,
    },
    /// A trial input ([`Input::TrialClaimed`] and the others); answers
    /// with the trial then running, or why not.
    Trial {
        /// The input.
        input: Input,
        /// Where the answer goes; none for a cancellation.
        reply: Option<oneshot::Sender<Result<Option<Trial>, Refusal>>>,
    },
}

/// A cloneable handle on the owner task: commands in, snapshots out.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
}

impl Handle {
    /// The latest snapshot; never waits for a probe.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Registers an activation; `None` when the daemon is stopping.
    pub async fn register_activation(&self, jail: String) -> Option<DateTime<Utc>> {
        self.ask(|reply| Command::RegisterActivation { jail, reply })
            .await
    }

    /// Dismisses the record; `None` when the daemon is stopping.
    pub async fn dismiss_recovery(&self) -> Option<Result<(), Refusal>> {
        self.ask(|reply| Command::DismissRecovery { reply }).await
    }

    /// Probes now; `None` when the daemon is stopping.
    pub async fn probe(&self) -> Option<bool> {
        self.ask(|reply| Command::Probe { floor: true, reply })
            .await
    }

    /// Probes now, never answered by an earlier probe (a rollback waiting
    /// for fail2ban's jails to settle); `None` when the daemon is stopping.
    pub async fn probe_fresh(&self) -> Option<bool> {
        self.ask(|reply| Command::Probe {
            floor: false,
            reply,
        })
        .await
    }

    /// Marks a rollback started; the record's activation, or why not.
    pub async fn begin_rollback(&self) -> Option<Result<Activation, Refusal>> {
        self.ask(|reply| Command::BeginRollback { reply }).await
    }

    /// Marks the rollback started last as ended, without waiting (also
    /// from a destructor).
    pub fn finish_rollback(&self, activation: Activation, done: bool) {
        self.send_now(Command::FinishRollback { activation, done });
    }

    async fn trial(&self, input: Input) -> Option<Result<Option<Trial>, Refusal>> {
        self.ask(|reply| Command::Trial {
            input,
            reply: Some(reply),
        })
        .await
    }

    /// Claims the one trial slot for `jail` while its checks run.
    pub async fn claim_trial(&self, jail: String) -> Option<Result<(), Refusal>> {
        self.trial(Input::TrialClaimed { jail })
            .await
            .map(|r| r.map(|_| ()))
    }

    /// Starts the claimed trial; answers with its start.
    pub async fn start_trial(
        &self,
        jail: String,
        timeout: std::time::Duration,
        dropin_before: Option<String>,
    ) -> Option<Result<DateTime<Utc>, Refusal>> {
        let input = Input::TrialStarted {
            jail,
            timeout,
            dropin_before,
        };
        self.trial(input)
            .await
            .map(|r| r.and_then(|t| t.map(|t| t.started_at).ok_or(Refusal::NoTrial)))
    }

    /// Frees a claimed trial slot, or ends a trial that could not be set
    /// up, without waiting (also from a destructor).
    pub fn cancel_trial(&self) {
        self.send_now(Command::Trial {
            input: Input::TrialCancelled,
            reply: None,
        });
    }

    /// `Confirm()`: ends the trial, keeping its jail.
    pub async fn confirm_trial(&self) -> Option<Result<Option<Trial>, Refusal>> {
        self.trial(Input::TrialConfirmed).await
    }

    /// `Abort()`: rolls the trial's jail back.
    pub async fn abort_trial(&self) -> Option<Result<Option<Trial>, Refusal>> {
        self.trial(Input::TrialAborted).await
    }

    /// Sends `command` without waiting; a full queue is waited for in a
    /// task.
    fn send_now(&self, command: Command) {
        if let Err(mpsc::error::TrySendError::Full(command)) = self.commands.try_send(command) {
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let _ = commands.send(command).await;
            });
        }
    }
}

fn builder(bus: &Bus) -> zbus::connection::Builder<'_> {
    match bus {
        Bus::System => zbus::connection::Builder::system(),
        Bus::Session => zbus::connection::Builder::session(),
        Bus::Address(addr) => zbus::connection::Builder::address(addr.as_str()),
    }
}

/// Runs the daemon until SIGTERM or SIGINT (`Ok`, exit 0) or until the bus
/// goes away or the name cannot be had (`Err`, exit non-zero, so that
/// systemd restarts it).
///
/// # Errors
/// Failing to reach the bus, to own the name, or losing the bus.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot watch SIGINT")?;

    // What the state file remembers is on the bus from the first read.
    let monitor = owner::restore(&config);
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(monitor.snapshot().clone()));
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let handle = Handle {
        commands: commands_tx,
        snapshot: snapshot_rx,
    };
    let constants = Constants {
        probe_interval_usec: micros(config.timing.probe_interval),
        crash_window_usec: micros(config.timing.crash_window),
        socket_path: config.probe.socket.display().to_string(),
    };
    let auth = Authorizer::new(Groups {
        manage: config.manage_group.as_ref().map(|g| g.gid),
        rollback: config.rollback_group.as_ref().map(|g| g.gid),
    });
    // Every object is served before the name is requested, so a client
    // that sees the name finds the object.
    let rollback = rollback::Settings {
        rollback: config.rollback.clone(),
        unit: config.fail2ban_unit.clone(),
        socket: config.probe.socket.clone(),
    };
    let conn = builder(&config.bus)
        .serve_at(
            PATH,
            Health::new(handle.clone(), constants, auth, rollback.clone()),
        )
        .build()
        .await
        .context("cannot connect to the D-Bus bus")?;
    conn.request_name(NAME)
        .await
        .with_context(|| format!("cannot own the bus name {NAME}"))?;
    tracing::info!(bus_name = NAME, "bus_name_acquired");

    // Followed even without instant detection: under socket activation the
    // unit says when connecting would start fail2ban.
    let (unit_tx, unit_rx) = mpsc::unbounded_channel();
    let unit_watch = (!config.fail2ban_unit.is_empty()).then(|| {
        tokio::spawn(unit_watch::run(
            conn.clone(),
            config.fail2ban_unit.clone(),
            config.probe.socket.clone(),
            unit_tx,
        ))
    });
    // The rollbacks the monitor asks for (a trial's), run as `Rollback`'s.
    let (rollbacks_tx, mut rollbacks_rx) = mpsc::unbounded_channel::<owner::RollbackDue>();
    let rollback_runner = {
        let conn = conn.clone();
        let handle = handle.clone();
        let settings = rollback.clone();
        tokio::spawn(async move {
            while let Some(due) = rollbacks_rx.recv().await {
                let (conn, handle, settings) = (conn.clone(), handle.clone(), settings.clone());
                tokio::spawn(async move {
                    let undo = rollback::Undo::Restore(due.dropin_before);
                    let _ = rollback::run(settings, conn, handle, due.activation, 0, undo).await;
                });
            }
        })
    };
    let (publish_tx, publish_rx) = mpsc::unbounded_channel();
    let publisher = tokio::spawn(publish::run(conn.clone(), publish_rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let owner = tokio::spawn(owner::run(
        owner::Parts {
            config: config.clone(),
            monitor,
            commands: commands_rx,
            unit_states: unit_rx,
            snapshot: snapshot_tx,
            publish: publish_tx,
            rollbacks: rollbacks_tx,
        },
        stop_rx,
    ));
    notify::ready();

    let outcome = tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
        () = conn.closed() => Err(anyhow::anyhow!("the D-Bus connection was closed")),
    };
    notify::stopping();
    let _ = stop_tx.send(true);
    // The owner task ends its loop and drops its publish sender; the
    // publisher then drains what is left and ends.
    let _ = owner.await;
    let _ = publisher.await;
    rollback_runner.abort();
    if let Some(task) = unit_watch {
        task.abort();
    }
    match outcome {
        Ok(signal) => {
            tracing::info!(signal, "daemon_stopping");
            let _ = conn.release_name(NAME).await;
            let _ = conn.close().await;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
