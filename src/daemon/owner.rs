//! The owner task: the only owner of the monitor and of the fail2ban
//! connection.
//!
//! It runs probes when the monitor asks (one at a time, the future owning
//! the prober so nothing is shared), applies commands, publishes a new
//! snapshot after every step, hands events to the publisher, logs them,
//! and pings systemd's watchdog from this same loop, so a stuck loop gets
//! the daemon restarted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};

use super::handle::Command;
use super::notify;
use super::publish::Job;
use crate::config::Config;
use crate::fail2ban::{self, Prober};
use crate::health::ServerStatus;
use crate::monitor::{Activation, Event, Input, Monitor, Now, Refusal, Snapshot, UnitState};
use crate::text::error_chain;

/// What the owner task is given.
pub struct Parts {
    /// Validated settings.
    pub config: Config,
    /// The monitor, restored from the state file.
    pub monitor: Monitor,
    /// Commands from the bus methods.
    pub commands: mpsc::Receiver<Command>,
    /// fail2ban's systemd unit, at start and at each change.
    pub unit_states: mpsc::UnboundedReceiver<UnitState>,
    /// Where snapshots are published for property reads.
    pub snapshot: watch::Sender<Arc<Snapshot>>,
    /// Where events and snapshot changes go to the bus.
    pub publish: mpsc::UnboundedSender<Job>,
    /// Where the rollbacks the monitor asks for go.
    pub rollbacks: mpsc::UnboundedSender<RollbackDue>,
}

/// A rollback the monitor asked for: a trial's.
#[derive(Debug)]
pub struct RollbackDue {
    /// The trial's activation.
    pub activation: Activation,
    /// The drop-in before the trial.
    pub dropin_before: Option<String>,
}

type Probing =
    Pin<Box<dyn Future<Output = (Prober, Result<ServerStatus, fail2ban::Error>)> + Send>>;

/// How long the first probe waits for the unit watch's first report.
const FIRST_UNIT_REPORT: Duration = Duration::from_secs(3);

/// At most this many `Probe()` callers wait for one probe.
const MAX_WAITERS: usize = 1024;

/// A probe that ended less than this before a `Probe()` call answers it:
/// no caller can make the daemon hammer fail2ban.
pub const PROBE_FLOOR: Duration = Duration::from_secs(1);

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall: Utc::now(),
    }
}

/// Runs until `stop` turns true.
pub async fn run(parts: Parts, mut stop: watch::Receiver<bool>) {
    let Parts {
        config,
        mut monitor,
        mut commands,
        mut unit_states,
        snapshot,
        publish,
        rollbacks,
    } = parts;
    let mut memory = Arc::new(monitor.memory());
    let (memory_tx, memory_rx) = watch::channel(memory.clone());
    let persister = tokio::spawn(super::persist::run(config.state_file.clone(), memory_rx));
    let mut prober = Some(if config.instant_detection {
        Prober::holding(config.probe.clone())
    } else {
        Prober::new(config.probe.clone())
    });
    let mut probing: Option<Probing> = None;
    let mut probe_started = Instant::now();
    let mut probe_ended: Option<Instant> = None;
    let mut probe_took = Duration::ZERO;
    let (metrics_tx, metrics_rx) = watch::channel(None);
    let metrics = config
        .metrics_file
        .clone()
        .map(|path| tokio::spawn(super::metrics::run(path, metrics_rx)));
    let mut socket_watch =
        super::socket_watch::SocketWatch::new(&config.probe.socket, config.instant_detection);
    let mut waiters: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut published = snapshot.borrow().clone();
    let mut status_line = notify::status_line(&published);
    let mut last_error = String::new();
    // Probes in a row that this process itself could not make.
    let mut local_failures: u64 = 0;
    let mut warned_broken_activation = false;
    let watchdog = notify::watchdog_period();
    let mut ticker = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    notify::status(&status_line);
    tracing::info!(
        interval_seconds = config.timing.probe_interval.as_secs_f64(),
        crash_window_seconds = config.timing.crash_window.as_secs_f64(),
        socket = %config.probe.socket.display(),
        "health_check_scheduled"
    );
    // Under socket activation the first connection would start fail2ban:
    // learn what the unit is before the first probe. Without systemd the
    // unit watch ends at once and closes the channel.
    if let Ok(Some(state)) = tokio::time::timeout(FIRST_UNIT_REPORT, unit_states.recv()).await {
        monitor.handle_input(now(), Input::UnitChanged(state)).ok();
    }
    monitor.handle_timeout(now());

    loop {
        let mut events = Vec::new();
        while let Some(event) = monitor.poll_event() {
            match event {
                Event::ProbeDue => match prober.take() {
                    Some(mut p) => {
                        p.set_reconnect(!monitor.unit().is_some_and(UnitState::socket_activated));
                        probe_started = Instant::now();
                        probing = Some(Box::pin(async move {
                            let result = p.probe().await;
                            (p, result)
                        }));
                    }
                    None => tracing::error!("probe_due_while_probing"),
                },
                Event::TrialRollbackDue {
                    activation,
                    dropin_before,
                } => {
                    tracing::warn!(jail = %activation.jail_name, "trial_rolling_back");
                    let due = RollbackDue {
                        activation: activation.clone(),
                        dropin_before,
                    };
                    if rollbacks.send(due).is_err() {
                        // Stopping: the trial stays, and is resumed after
                        // a restart.
                        tracing::warn!(jail = %activation.jail_name, "trial_rollback_not_started");
                    }
                }
                other => {
                    log_event(&other, &last_error);
                    if matches!(other, Event::CameOnline { .. }) && !warned_broken_activation {
                        warned_broken_activation = warn_broken_activation(&monitor);
                    }
                    events.push(other);
                }
            }
        }
        if *monitor.snapshot() != *published || !events.is_empty() {
            let after = Arc::new(monitor.snapshot().clone());
            snapshot.send_replace(after.clone());
            let line = notify::status_line(&after);
            if line != status_line {
                notify::status(&line);
                status_line = line;
            }
            // Every probe changes the snapshot (its time), and so does every
            // record or dismissal: the metrics follow both.
            if metrics.is_some() {
                metrics_tx.send_replace(Some((after.clone(), probe_took)));
            }
            let _ = publish.send(Job {
                before: published,
                after: after.clone(),
                events,
            });
            published = after;
        }
        let remembered = monitor.memory();
        if remembered != *memory {
            memory = Arc::new(remembered);
            memory_tx.send_replace(memory.clone());
        }
        if !monitor.probe_in_flight() {
            for waiter in waiters.drain(..) {
                let _ = waiter.send(published.online);
            }
        }

        let deadline = monitor.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            (p, result) = async { probing.as_mut().expect("guarded by is_some").await }, if probing.is_some() => {
                probing = None;
                prober = Some(p);
                match result {
                    // The daemon's own failure (no file descriptor left,
                    // say) says nothing about fail2ban.
                    Err(e) if e.is_local() => {
                        let error = crate::text::clean(&error_chain(&e), 300).into_owned();
                        if local_failures == 0 {
                            tracing::error!(error = %error, "probe_failed_locally");
                        }
                        local_failures += 1;
                        monitor.handle_input(now(), Input::ProbeAborted).ok();
                    }
                    result => {
                        probe_ended = Some(Instant::now());
                        if local_failures > 0 {
                            tracing::info!(failures = local_failures, "probe_possible_again");
                            local_failures = 0;
                        }
                        let result = result.map_err(|e| {
                            last_error = crate::text::clean(&error_chain(&e), 300).into_owned();
                            e.offline_reason()
                        });
                        monitor.handle_input(now(), Input::ProbeFinished(result)).ok();
                    }
                }
                probe_took = probe_started.elapsed();
                let s = monitor.snapshot();
                tracing::debug!(
                    online = s.online,
                    version = %crate::text::clean(&s.version, 64),
                    active_jails = s.jails.len(),
                    offline_reason = %s.offline_reason,
                    "health_check_complete"
                );
            }
            () = held_closed(&mut prober), if prober.as_ref().is_some_and(Prober::holds_connection) => {
                // fail2ban closed the idle connection: it died or restarted.
                tracing::debug!("fail2ban_connection_closed");
                let now = now();
                monitor.handle_input(now, Input::IdleConnectionClosed).ok();
                monitor.handle_timeout(now);
            }
            () = socket_watch.appeared() => {
                // Always consumed, so none is stale later; the monitor
                // ignores it while fail2ban is known to be online.
                let now = now();
                monitor.handle_input(now, Input::SocketAppeared).ok();
                monitor.handle_timeout(now);
            }
            // Time and the watchdog come before callers: no flood of method
            // calls can starve them.
            () = sleep_until(deadline), if deadline.is_some() => monitor.handle_timeout(now()),
            _ = ticker.tick(), if watchdog.is_some() => notify::watchdog(),
            Some(state) = unit_states.recv() => {
                let now = now();
                monitor.handle_input(now, Input::UnitChanged(state)).ok();
                monitor.handle_timeout(now);
            }
            Some(command) = commands.recv() => {
                let fresh = probe_ended.is_some_and(|t| t.elapsed() < PROBE_FLOOR);
                apply(&mut monitor, &mut waiters, command, fresh);
            }
        }
    }
    if let Some(mut p) = prober {
        p.release().await;
    }
    drop(memory_tx);
    drop(metrics_tx);
    let _ = persister.await;
    if let Some(task) = metrics {
        let _ = task.await;
    }
}

/// The monitor, with what the state file remembers. An unusable file is
/// moved aside with a warning, and the daemon starts clean.
pub fn restore(config: &Config) -> Monitor {
    let now = now();
    let path = &config.state_file;
    match crate::state::load(path) {
        Ok(Some(memory)) => {
            tracing::info!(
                path = %path.display(),
                record = memory.record.is_some(),
                "state_restored"
            );
            Monitor::restored(config.timing, now, memory)
        }
        Ok(None) => Monitor::new(config.timing, now),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "state_file_unusable");
            // Moved aside, corrupt or unreadable alike, so that the next
            // write does not destroy what an administrator may recover.
            match crate::state::quarantine(path, now.wall) {
                Ok(aside) => tracing::warn!(aside = %aside.display(), "state_file_moved_aside"),
                Err(e) => tracing::warn!(error = %e, "state_file_not_moved"),
            }
            Monitor::new(config.timing, now)
        }
    }
}

async fn held_closed(prober: &mut Option<Prober>) {
    match prober {
        Some(p) => p.held_connection_closed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Applies a command; `fresh` when the latest probe ended less than
/// [`PROBE_FLOOR`] ago.
fn apply(
    monitor: &mut Monitor,
    waiters: &mut Vec<oneshot::Sender<bool>>,
    command: Command,
    fresh: bool,
) {
    let now = now();
    match command {
        Command::RegisterActivation { jail, reply } => {
            monitor
                .handle_input(now, Input::ActivationRegistered { jail })
                .ok();
            let _ = reply.send(now.wall);
        }
        Command::DismissRecovery { reply } => {
            let _ = reply.send(monitor.handle_input(now, Input::RecoveryDismissed));
        }
        Command::BeginRollback { reply } => {
            let answer = monitor
                .handle_input(now, Input::RollbackStarted)
                .and_then(|()| {
                    monitor
                        .snapshot()
                        .pending_recovery
                        .as_ref()
                        .map(|r| Activation {
                            jail_name: r.jail_name.clone(),
                            activated_at: r.activated_at,
                        })
                        .ok_or(Refusal::NoPendingRecovery)
                });
            let _ = reply.send(answer);
        }
        Command::Trial { input, reply } => {
            let answer = monitor
                .handle_input(now, input)
                .map(|()| monitor.snapshot().trial.clone());
            monitor.handle_timeout(now);
            if let Some(reply) = reply {
                let _ = reply.send(answer);
            }
        }
        Command::FinishRollback { activation, done } => {
            monitor
                .handle_input(now, Input::RollbackFinished { activation, done })
                .ok();
            monitor.handle_timeout(now);
        }
        Command::Probe { floor, reply } if floor && fresh && !monitor.probe_in_flight() => {
            // The properties reflect a probe that ended less than a second
            // ago: that answers the call.
            let _ = reply.send(monitor.snapshot().online);
        }
        Command::Probe { reply, .. } if waiters.len() >= MAX_WAITERS => {
            // A flood of callers during a hung probe: answer from what is
            // known rather than queue without bound.
            let _ = reply.send(monitor.snapshot().online);
        }
        Command::Probe { reply, .. } => {
            // Callers arriving during a probe share it.
            if !monitor.probe_in_flight() {
                monitor.handle_input(now, Input::ProbeRequested).ok();
                monitor.handle_timeout(now);
            }
            waiters.push(reply);
        }
    }
}

/// fail2ban 1.1.1 ships `fail2ban.socket`, but its socket activation is
/// broken (fixed after 1.1.1, gh-4225): a clean stop leaves the socket unit
/// failed, and a crash leaves a server without its socket file. Says so
/// once, when that combination is seen; true once said.
fn warn_broken_activation(monitor: &Monitor) -> bool {
    let activated = monitor.unit().is_some_and(UnitState::socket_activated);
    let version = &monitor.snapshot().version;
    if activated && version == "1.1.1" {
        tracing::warn!(
            version = %version,
            "fail2ban_socket_activation_broken"
        );
        return true;
    }
    false
}

fn log_event(event: &Event, last_error: &str) {
    match event {
        Event::ProbeDue => {}
        Event::CameOnline { version } => {
            tracing::info!(version = %crate::text::clean(version, 64), "fail2ban_came_online");
        }
        Event::WentOffline { reason } => {
            tracing::warn!(reason = %reason, error = %last_error, "fail2ban_went_offline");
        }
        Event::CrashDetected {
            record,
            since_activation,
        } => {
            tracing::warn!(
                jail = %record.jail_name,
                cause = record.cause.code(),
                offline_reason = %record.cause.offline_reason(),
                seconds_since_activation = since_activation.as_secs_f64(),
                "activation_crash_detected"
            );
        }
        Event::RecoveryResolved { jail, .. } => {
            tracing::info!(jail = %jail, "pending_recovery_resolved");
        }
        Event::TrialRollbackDue { .. } => {}
        Event::TrialEnded { jail, kept, cause } => {
            if *kept {
                tracing::info!(jail = %jail, "trial_kept");
            } else {
                tracing::warn!(jail = %jail, cause, "trial_rolled_back");
            }
        }
    }
}
