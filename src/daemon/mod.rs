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
//! - `metrics`: the Prometheus text file, written after every probe.

mod metrics;
mod notify;
mod owner;
mod persist;
mod publish;
pub mod rollback;
mod socket_watch;
mod unit_watch;

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::auth::{Authorizer, Groups};
use crate::bus::interface::{Constants, Health};
use crate::bus::{NAME, PATH};
use crate::config::{Bus, Config};
use crate::monitor::{Activation, Refusal, Snapshot};

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
    /// from a destructor). A full queue is waited for in a task.
    pub fn finish_rollback(&self, activation: Activation, done: bool) {
        let command = Command::FinishRollback { activation, done };
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
        .serve_at(PATH, Health::new(handle, constants, auth, rollback))
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
