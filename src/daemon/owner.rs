//! The owner task: the only owner of the monitor and of the fail2ban
//! connection.
//!
//! It carries out the monitor's actions (a probe, one at a time, the
//! future owning the prober so nothing is shared; a trial's rollback,
//! handed to the rollback task), applies commands, publishes a new
//! snapshot after every step, hands events to the publisher, logs them,
//! persists what the monitor must remember, and pings systemd's watchdog
//! from this same loop, so a stuck loop gets the daemon restarted.
//!
//! [`run`] is a short `select!` loop; each of its arms is one method of
//! [`Owner`], and [`Owner::after_step`] follows the monitor's call order
//! (see [`crate::monitor`]) after every one of them.
//!
//! Words: "watch" is a `tokio::sync::watch` channel (snapshots, memory,
//! metrics, stop); the socket file's appearance comes from `SocketWatch`
//! (named by its own module) as `socket_file`; the watchdog is systemd's.
//! An *action* is what the monitor asks this task to do, an *event* what
//! it announces.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::handle::Command;
use super::metrics::Sample;
use super::notify;
use super::publish::Job;
use super::socket_watch::SocketWatch;
use crate::config::Config;
use crate::fail2ban::{self, Prober};
use crate::health::ServerStatus;
use crate::monitor::{
    Action, Activation, Event, Input, Memory, Monitor, Now, Refusal, Snapshot, UnitState,
};
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
    /// Where the state-file writer says what is on disk.
    pub saved: watch::Sender<Arc<Memory>>,
    /// Where events and snapshot changes go to the bus.
    pub publish: mpsc::UnboundedSender<Job>,
    /// Where the rollbacks the monitor asks for go.
    pub rollbacks: mpsc::UnboundedSender<RollbackDue>,
}

/// A rollback the monitor asked for ([`Action::RollBackTrial`]): a
/// trial's, run by the rollback task.
#[derive(Debug)]
pub struct RollbackDue {
    /// The trial's activation.
    pub activation: Activation,
    /// The drop-in before the trial.
    pub dropin_before: Option<String>,
}

type Probing =
    Pin<Box<dyn Future<Output = (Prober, Result<ServerStatus, fail2ban::Error>)> + Send>>;

/// How long the first probe waits for the first report of fail2ban's unit.
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
        monitor,
        mut commands,
        mut unit_states,
        snapshot,
        saved,
        publish,
        rollbacks,
    } = parts;
    let (outlets, writers) = Outlets::open(&config, &monitor, snapshot, publish, rollbacks, saved);
    let mut owner = Owner::new(&config, monitor, outlets);
    let mut socket_file = SocketWatch::new(&config.probe.socket, config.instant_detection);
    let watchdog = notify::watchdog_period();
    let mut ticker = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    owner.start(&config, &mut unit_states).await;
    loop {
        owner.after_step();
        let deadline = owner.deadline();
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            (p, result) = probe_done(&mut owner.probing), if owner.probing.is_some() => {
                owner.probe_finished(p, result);
            }
            () = held_closed(&mut owner.prober), if owner.holds_connection() => {
                owner.idle_connection_closed();
            }
            () = socket_file.appeared() => owner.socket_appeared(),
            // Time and the watchdog come before callers: no flood of method
            // calls can starve them.
            () = sleep_until(deadline), if deadline.is_some() => owner.timeout(),
            _ = ticker.tick(), if watchdog.is_some() => notify::watchdog(),
            Some(state) = unit_states.recv() => owner.unit_changed(state),
            Some(command) = commands.recv() => owner.command(command),
        }
    }
    owner.shut_down().await;
    writers.finish().await;
}

/// The tasks that write files from what the owner sends them.
struct Writers {
    /// Writes the state file.
    persister: JoinHandle<()>,
    /// Writes the metrics file, when one is configured.
    metrics: Option<JoinHandle<()>>,
}

impl Writers {
    /// Waits for both to write their last, once the owner has closed its
    /// outlets.
    async fn finish(self) {
        let _ = self.persister.await;
        if let Some(task) = self.metrics {
            let _ = task.await;
        }
    }
}

/// The owner task's state. Only this task touches it; everything else
/// sees the snapshots it publishes.
struct Owner {
    /// The rules, and the state they publish.
    monitor: Monitor,
    /// The connection to fail2ban while no probe runs; `None` while the
    /// running probe owns it.
    prober: Option<Prober>,
    /// The running probe; it hands the prober back when it ends.
    probing: Option<Probing>,
    /// When the running (or latest) probe started.
    probe_started: Instant,
    /// When the latest probe that reached for fail2ban ended: a `Probe()`
    /// call less than [`PROBE_FLOOR`] after it is answered from it.
    probe_ended: Option<Instant>,
    /// How long the latest probe took, for the metrics.
    probe_took: Duration,
    /// Probes in a row that this process itself could not make.
    local_failures: u64,
    /// The latest probe error, cleaned, for the log line of going offline.
    last_error: String,
    /// `Probe()` callers waiting for the running probe; answered once none
    /// runs.
    waiters: Vec<oneshot::Sender<bool>>,
    /// The broken socket activation of fail2ban 1.1.1 was warned about.
    warned_broken_activation: bool,
    /// Where the outputs go.
    out: Outlets,
}

/// Where the owner task's outputs go, and what it sent last. The owner is
/// the only sender on each.
struct Outlets {
    /// Snapshots, for property reads.
    snapshot: watch::Sender<Arc<Snapshot>>,
    /// The snapshot sent last.
    published: Arc<Snapshot>,
    /// The status line sent to systemd last.
    status_line: String,
    /// Steps to announce on the bus, to the publisher task.
    publish: mpsc::UnboundedSender<Job>,
    /// Trials' rollbacks, to the rollback task.
    rollbacks: mpsc::UnboundedSender<RollbackDue>,
    /// What must survive a restart, to the persister task, which owns the
    /// state file.
    memory: watch::Sender<Arc<Memory>>,
    /// Samples for the metrics task, when a metrics file is configured.
    metrics: Option<watch::Sender<Sample>>,
}

impl Outlets {
    /// The outlets, with the persister and the metrics task started.
    fn open(
        config: &Config,
        monitor: &Monitor,
        snapshot: watch::Sender<Arc<Snapshot>>,
        publish: mpsc::UnboundedSender<Job>,
        rollbacks: mpsc::UnboundedSender<RollbackDue>,
        saved: watch::Sender<Arc<Memory>>,
    ) -> (Self, Writers) {
        let (memory, memory_rx) = watch::channel(Arc::new(monitor.memory()));
        let persister = tokio::spawn(super::persist::run(
            config.state_file.clone(),
            memory_rx,
            saved,
        ));
        let (metrics, metrics_rx) = watch::channel(None);
        let metrics_task = config
            .metrics_file
            .clone()
            .map(|path| tokio::spawn(super::metrics::run(path, metrics_rx)));
        let published = snapshot.borrow().clone();
        let outlets = Self {
            status_line: notify::status_line(&published),
            published,
            snapshot,
            publish,
            rollbacks,
            memory,
            metrics: metrics_task.is_some().then_some(metrics),
        };
        let writers = Writers {
            persister,
            metrics: metrics_task,
        };
        (outlets, writers)
    }
}

impl Owner {
    fn new(config: &Config, monitor: Monitor, out: Outlets) -> Self {
        let prober = if config.instant_detection {
            Prober::holding(config.probe.clone())
        } else {
            Prober::new(config.probe.clone())
        };
        Self {
            monitor,
            prober: Some(prober),
            probing: None,
            probe_started: Instant::now(),
            probe_ended: None,
            probe_took: Duration::ZERO,
            local_failures: 0,
            last_error: String::new(),
            waiters: Vec::new(),
            warned_broken_activation: false,
            out,
        }
    }

    /// Before the loop: says what is scheduled, learns the unit, and lets
    /// the first probe fall due.
    async fn start(
        &mut self,
        config: &Config,
        unit_states: &mut mpsc::UnboundedReceiver<UnitState>,
    ) {
        notify::status(&self.out.status_line);
        tracing::info!(
            interval_seconds = config.timing.probe_interval.as_secs_f64(),
            crash_window_seconds = config.timing.crash_window.as_secs_f64(),
            socket = %config.probe.socket.display(),
            "health_check_scheduled"
        );
        // Under socket activation the first connection would start
        // fail2ban: learn what the unit is before the first probe. Without
        // systemd the unit reports end at once and close the channel.
        if let Ok(Some(state)) = tokio::time::timeout(FIRST_UNIT_REPORT, unit_states.recv()).await {
            self.monitor
                .handle_input(now(), Input::UnitChanged(state))
                .ok();
        }
        self.monitor.handle_timeout(now());
    }

    /// When the monitor next wants [`Monitor::handle_timeout`].
    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.monitor
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
    }

    /// The monitor's deadline has come.
    fn timeout(&mut self) {
        self.monitor.handle_timeout(now());
    }

    /// Whether the prober holds an idle connection that fail2ban may close.
    fn holds_connection(&self) -> bool {
        self.prober.as_ref().is_some_and(Prober::holds_connection)
    }

    /// After every step, the monitor's call order: log its events, carry
    /// out its actions, publish the snapshot and the events, persist its
    /// memory, and answer the `Probe()` callers once no probe runs. (Events
    /// are logged first so that the journal tells a record before the
    /// rollback it asks for.)
    fn after_step(&mut self) {
        let events = self.take_events();
        while let Some(action) = self.monitor.poll_action() {
            match action {
                Action::StartProbe => self.start_probe(),
                Action::RollBackTrial {
                    activation,
                    dropin_before,
                } => self.start_rollback(activation, dropin_before),
            }
        }
        self.publish(events);
        let remembered = self.monitor.memory();
        self.out.memory.send_if_modified(|memory| {
            let changed = **memory != remembered;
            if changed {
                *memory = Arc::new(remembered);
            }
            changed
        });
        if !self.monitor.probe_in_flight() {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(self.out.published.online);
            }
        }
    }

    /// [`Action::StartProbe`]: the probe future takes the prober.
    fn start_probe(&mut self) {
        let Some(mut p) = self.prober.take() else {
            tracing::error!("probe_due_while_probing");
            return;
        };
        p.set_reconnect(!self.monitor.unit().is_some_and(UnitState::socket_activated));
        self.probe_started = Instant::now();
        self.probing = Some(Box::pin(async move {
            let result = p.probe().await;
            (p, result)
        }));
    }

    /// [`Action::RollBackTrial`]: handed to the rollback task.
    fn start_rollback(&mut self, activation: Activation, dropin_before: Option<String>) {
        tracing::warn!(jail = %activation.jail_name, "trial_rolling_back");
        let jail = activation.jail_name.clone();
        let due = RollbackDue {
            activation,
            dropin_before,
        };
        if self.out.rollbacks.send(due).is_err() {
            // Stopping: the trial stays, and is resumed after a restart.
            tracing::warn!(jail = %jail, "trial_rollback_not_started");
        }
    }

    /// The monitor's events, logged.
    fn take_events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = self.monitor.poll_event() {
            log_event(&event, &self.last_error);
            if matches!(event, Event::CameOnline { .. }) && !self.warned_broken_activation {
                self.warned_broken_activation = warn_broken_activation(&self.monitor);
            }
            events.push(event);
        }
        events
    }

    /// Publishes the snapshot when it changed or there are events: to
    /// property reads, systemd's status line, the metrics and the bus.
    fn publish(&mut self, events: Vec<Event>) {
        if *self.monitor.snapshot() == *self.out.published && events.is_empty() {
            return;
        }
        let after = Arc::new(self.monitor.snapshot().clone());
        self.out.snapshot.send_replace(after.clone());
        let line = notify::status_line(&after);
        if line != self.out.status_line {
            notify::status(&line);
            self.out.status_line = line;
        }
        // Every probe changes the snapshot (its time), and so does every
        // record or dismissal: the metrics follow both.
        if let Some(metrics) = &self.out.metrics {
            metrics.send_replace(Some((after.clone(), self.probe_took)));
        }
        let before = std::mem::replace(&mut self.out.published, after.clone());
        let _ = self.out.publish.send(Job {
            before,
            after,
            events,
        });
    }

    /// The running probe has ended and handed the prober back.
    fn probe_finished(&mut self, prober: Prober, result: Result<ServerStatus, fail2ban::Error>) {
        self.probing = None;
        self.prober = Some(prober);
        match result {
            // The daemon's own failure (no file descriptor left, say) says
            // nothing about fail2ban.
            Err(e) if e.is_local() => {
                let error = crate::text::clean(&error_chain(&e), 300).into_owned();
                if self.local_failures == 0 {
                    tracing::error!(error = %error, "probe_failed_locally");
                }
                self.local_failures += 1;
                self.monitor.handle_input(now(), Input::ProbeAborted).ok();
            }
            result => {
                self.probe_ended = Some(Instant::now());
                if self.local_failures > 0 {
                    tracing::info!(failures = self.local_failures, "probe_possible_again");
                    self.local_failures = 0;
                }
                let result = result.map_err(|e| {
                    self.last_error = crate::text::clean(&error_chain(&e), 300).into_owned();
                    e.offline_reason()
                });
                self.monitor
                    .handle_input(now(), Input::ProbeFinished(result))
                    .ok();
            }
        }
        self.probe_took = self.probe_started.elapsed();
        let s = self.monitor.snapshot();
        tracing::debug!(
            online = s.online,
            version = %crate::text::clean(&s.version, 64),
            active_jails = s.jails.len(),
            offline_reason = %s.offline_reason,
            "health_check_complete"
        );
    }

    /// fail2ban closed the idle connection: it died or restarted.
    fn idle_connection_closed(&mut self) {
        tracing::debug!("fail2ban_connection_closed");
        self.input_now(Input::IdleConnectionClosed);
    }

    /// fail2ban's socket file appeared. Always consumed, so none is stale
    /// later; the monitor ignores it while fail2ban is known to be online.
    fn socket_appeared(&mut self) {
        self.input_now(Input::SocketAppeared);
    }

    /// fail2ban's unit reported a change.
    fn unit_changed(&mut self, state: UnitState) {
        self.input_now(Input::UnitChanged(state));
    }

    /// Feeds `input` and starts at once a probe it asks for.
    fn input_now(&mut self, input: Input) {
        let now = now();
        self.monitor.handle_input(now, input).ok();
        self.monitor.handle_timeout(now);
    }

    /// A command from a bus method.
    fn command(&mut self, command: Command) {
        let now = now();
        match command {
            Command::RegisterActivation { jail, reply } => {
                self.monitor
                    .handle_input(now, Input::ActivationRegistered { jail })
                    .ok();
                let _ = reply.send(now.wall);
            }
            Command::DismissRecovery { reply } => {
                let _ = reply.send(self.monitor.handle_input(now, Input::RecoveryDismissed));
            }
            Command::BeginRollback { reply } => {
                let _ = reply.send(self.begin_rollback(now));
            }
            Command::Trial { input, reply } => {
                let answer = self
                    .monitor
                    .handle_input(now, input)
                    .map(|()| self.monitor.snapshot().trial.clone());
                self.monitor.handle_timeout(now);
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            Command::FinishRollback { activation, done } => {
                self.input_now(Input::RollbackFinished { activation, done });
            }
            Command::Probe { floor, reply } => self.probe_requested(now, floor, reply),
        }
    }

    /// `Rollback()` starts: answered with the record's activation.
    fn begin_rollback(&mut self, now: Now) -> Result<Activation, Refusal> {
        self.monitor.handle_input(now, Input::RollbackStarted)?;
        self.monitor
            .snapshot()
            .pending_recovery
            .as_ref()
            .map(|r| Activation {
                jail_name: r.jail_name.clone(),
                activated_at: r.activated_at,
            })
            .ok_or(Refusal::NoPendingRecovery)
    }

    /// `Probe()`, or the daemon's own wait for a fresh probe (`floor`
    /// false): answered once the snapshot reflects a probe.
    fn probe_requested(&mut self, now: Now, floor: bool, reply: oneshot::Sender<bool>) {
        let fresh = self.probe_ended.is_some_and(|t| t.elapsed() < PROBE_FLOOR);
        if floor && fresh && !self.monitor.probe_in_flight() {
            // The properties reflect a probe that ended less than a second
            // ago: that answers the call.
            let _ = reply.send(self.monitor.snapshot().online);
        } else if self.waiters.len() >= MAX_WAITERS {
            // A flood of callers during a hung probe: answer from what is
            // known rather than queue without bound.
            let _ = reply.send(self.monitor.snapshot().online);
        } else {
            // Callers arriving during a probe share it.
            if !self.monitor.probe_in_flight() {
                self.monitor.handle_input(now, Input::ProbeRequested).ok();
                self.monitor.handle_timeout(now);
            }
            self.waiters.push(reply);
        }
    }

    /// After the loop: releases the held connection and closes the
    /// outlets, so the persister and the metrics task write their last.
    async fn shut_down(self) {
        if let Some(mut p) = self.prober {
            p.release().await;
        }
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

async fn probe_done(
    probing: &mut Option<Probing>,
) -> (Prober, Result<ServerStatus, fail2ban::Error>) {
    match probing {
        Some(p) => p.await,
        None => std::future::pending().await,
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
        Event::TrialEnded { jail, kept, cause } => {
            if *kept {
                tracing::info!(jail = %jail, "trial_kept");
            } else {
                tracing::warn!(jail = %jail, cause, "trial_rolled_back");
            }
        }
    }
}
