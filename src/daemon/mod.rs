//! `fail2ban-healthd run`: the owner task, its handle, the publishers and
//! the shutdown path.
//!
//! Layout:
//! - this file: [`run`] wires the bus, the owner task, the publisher, the
//!   watchers and the rollback runner, and stops them all on SIGTERM/SIGINT
//!   or when the bus goes away, waiting for each up to [`tasks::DEADLINE`];
//! - `handle`: the owner task's commands and the [`Handle`] that sends them;
//! - `service`: the bus's [`crate::bus::backend::Backend`], over the handle;
//! - `tasks`: the named task list and the stop signal every task follows;
//! - `owner`: the one task that owns the monitor and the fail2ban
//!   connection (it also runs the state file and metrics writers, and
//!   stops them when it stops); everything else talks to it through a
//!   [`Handle`];
//! - `publish`: signals and batched `PropertiesChanged` on the bus;
//! - `notify`: systemd's notify socket (READY, STATUS, WATCHDOG, STOPPING);
//! - `persist`: the state file, written after every change;
//! - `socket_watch`: inotify on the socket's path, to see fail2ban return;
//! - `unit_watch`: fail2ban's systemd unit (and its `.socket`), to tell a
//!   restart from a crash and, under socket activation, when not to connect;
//! - `rollback`: `Rollback()`: the drop-in, fail2ban's restart (systemd
//!   job or command) and the wait for it;
//! - `trial`: `Check()` and `Try()`: the checks, the trial's line, the
//!   reload (the monitor judges the trial and asks for its rollback);
//! - `metrics`: the Prometheus text file, written after every probe.

mod handle;
mod metrics;
mod notify;
mod owner;
mod persist;
mod publish;
pub mod rollback;
mod service;
mod socket_watch;
mod tasks;
pub mod trial;
mod unit_watch;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};
use zbus::Connection;

pub use handle::{Command, Handle};
use rollback::{Rollbacks, Undo};
use service::Service;
pub use tasks::DEADLINE;
use tasks::{Stop, Tasks};

use crate::bus::auth::{Authorizer, Groups};
use crate::bus::interface::{Constants, Health};
use crate::bus::{NAME, PATH};
use crate::config::{Bus, Config};

fn builder(bus: &Bus) -> zbus::connection::Builder<'_> {
    match bus {
        Bus::System => zbus::connection::Builder::system(),
        Bus::Session => zbus::connection::Builder::session(),
        Bus::Address(addr) => zbus::connection::Builder::address(addr.as_str()),
    }
}

/// Runs the daemon until SIGTERM or SIGINT (`Ok`, exit 0) or until the bus
/// goes away or the name cannot be had (`Err`, exit non-zero, so that
/// systemd restarts it). On the way out every task is told to stop and
/// waited for, up to [`DEADLINE`]; the journal names any that did not
/// stop.
///
/// # Errors
/// Failing to reach the bus, to own the name, or losing the bus.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let (stop_tx, stop) = Stop::new();
    let tasks = Tasks::default();
    // What the state file remembers is on the bus from the first read.
    let monitor = owner::restore(&config);
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(monitor.snapshot().clone()));
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let (saved_tx, saved_rx) = watch::channel(Arc::new(monitor.memory()));
    let rollbacks = Rollbacks {
        settings: rollback::Settings {
            rollback: config.rollback.clone(),
            unit: config.fail2ban_unit.clone(),
            socket: config.probe.socket.clone(),
        },
        daemon: Handle::new(commands_tx, snapshot_rx, saved_rx),
        tasks: tasks.clone(),
        stop: stop.clone(),
    };
    let conn = serve(&config, rollbacks.clone()).await?;
    let owner = Owner {
        monitor,
        commands: commands_rx,
        snapshot: snapshot_tx,
        saved: saved_tx,
    };
    spawn_tasks(&config, &conn, rollbacks, owner);
    notify::ready();

    let outcome = tokio::select! {
        signal = signals.next() => Ok(signal),
        () = conn.closed() => Err(anyhow::anyhow!("the D-Bus connection was closed")),
    };
    notify::stopping();
    if let Ok(signal) = &outcome {
        tracing::info!(signal, "daemon_stopping");
    }
    stop_all(stop_tx, &tasks).await;
    match outcome {
        Ok(_) => {
            leave_bus(conn).await;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// SIGTERM and SIGINT.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Connects, serves the object, then owns the name: every object is
/// served before the name is requested, so a client that sees the name
/// finds the object.
async fn serve(config: &Config, rollbacks: Rollbacks) -> anyhow::Result<Connection> {
    let constants = Constants {
        probe_interval_usec: micros(config.timing.probe_interval),
        crash_window_usec: micros(config.timing.crash_window),
        socket_path: config.probe.socket.display().to_string(),
    };
    let auth = Authorizer::new(Groups {
        manage: config.manage_group.as_ref().map(|g| g.gid),
        rollback: config.rollback_group.as_ref().map(|g| g.gid),
    });
    let health = Health::new(Arc::new(Service { rollbacks }), constants, auth);
    let conn = builder(&config.bus)
        .serve_at(PATH, health)
        .build()
        .await
        .context("cannot connect to the D-Bus bus")?;
    // Neither queued nor replaceable: a second daemon on the same bus fails
    // here instead of taking the name from the one that runs (zbus's default
    // flags allow replacement).
    conn.request_name_with_flags(NAME, zbus::fdo::RequestNameFlags::DO_NOT_QUEUE)
        .await
        .with_context(|| format!("cannot own the bus name {NAME}"))?;
    tracing::info!(bus_name = NAME, "bus_name_acquired");
    Ok(conn)
}

/// What the owner task starts with, before its channels to the other
/// tasks are made.
struct Owner {
    monitor: crate::monitor::Monitor,
    commands: mpsc::Receiver<Command>,
    snapshot: watch::Sender<Arc<crate::monitor::Snapshot>>,
    saved: watch::Sender<Arc<crate::monitor::Memory>>,
}

/// Spawns the owner task, the publisher, the unit watch and the runner of
/// the rollbacks the monitor asks for, each named in `rollbacks.tasks`.
fn spawn_tasks(config: &Config, conn: &Connection, rollbacks: Rollbacks, owner: Owner) {
    let (tasks, stop) = (rollbacks.tasks.clone(), rollbacks.stop.clone());
    // Followed even without instant detection: under socket activation the
    // unit says when connecting would start fail2ban.
    let (unit_tx, unit_rx) = mpsc::unbounded_channel();
    if !config.fail2ban_unit.is_empty() {
        let (unit, socket) = (config.fail2ban_unit.clone(), config.probe.socket.clone());
        let watch = unit_watch::run(conn.clone(), unit, socket, unit_tx, stop.clone());
        tasks.spawn("unit watch", watch);
    }
    let (due_tx, due_rx) = mpsc::unbounded_channel();
    tasks.spawn(
        "rollback runner",
        run_trial_rollbacks(due_rx, rollbacks, conn.clone()),
    );
    // The owner ends its loop on the stop and drops its publish sender;
    // the publisher then drains what is left and ends.
    let (publish_tx, publish_rx) = mpsc::unbounded_channel();
    tasks.spawn("publisher", publish::run(conn.clone(), publish_rx));
    let parts = owner::Parts {
        config: config.clone(),
        monitor: owner.monitor,
        commands: owner.commands,
        unit_states: unit_rx,
        snapshot: owner.snapshot,
        saved: owner.saved,
        publish: publish_tx,
        rollbacks: due_tx,
    };
    tasks.spawn(
        "owner (probes, state file, metrics)",
        owner::run(parts, stop.receiver()),
    );
}

/// Runs the rollbacks the monitor asks for (a trial's) as `Rollback`'s,
/// each in a task of its own, until the daemon stops.
async fn run_trial_rollbacks(
    mut due: mpsc::UnboundedReceiver<owner::RollbackDue>,
    rollbacks: Rollbacks,
    conn: Connection,
) {
    let mut stop = rollbacks.stop.clone();
    loop {
        let next = tokio::select! {
            () = stop.stopped() => return,
            next = due.recv() => next,
        };
        let Some(due) = next else { return };
        let undo = Undo::Restore(due.dropin_before);
        drop(rollbacks.spawn(conn.clone(), due.activation, 0, undo));
    }
}

/// Signals the stop and waits for every task, up to [`DEADLINE`].
async fn stop_all(stop: watch::Sender<bool>, tasks: &Tasks) {
    let running = tasks.running();
    let _ = stop.send(true);
    // Dropped too, as mini-redis drops its last sender: a task that
    // missed the value still sees the channel close.
    drop(stop);
    match tasks.wait(DEADLINE).await {
        Ok(()) => tracing::info!(tasks = ?running, "daemon_tasks_stopped"),
        Err(left) => tracing::warn!(
            tasks = ?left,
            deadline_seconds = DEADLINE.as_secs_f64(),
            "daemon_tasks_not_stopped"
        ),
    }
}

/// Gives the name back and closes the connection, each under a short
/// limit: the bus may be the reason the daemon stops.
async fn leave_bus(conn: Connection) {
    let limit = std::time::Duration::from_secs(1);
    let _ = tokio::time::timeout(limit, conn.release_name(NAME)).await;
    let _ = tokio::time::timeout(limit, conn.close()).await;
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
