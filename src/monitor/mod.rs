//! The crash-attribution state machine: pure, no I/O, no clock reads.
//!
//! Owns the published state (online status, latest activation, recovery
//! record) and the rules that turn probe results and commands into events.
//! Every input carries [`Now`]: a monotonic instant, on which all windows
//! and schedules are measured (so a wall-clock jump changes nothing), and
//! the wall-clock time shown to people. The monitor says when it next
//! wants a probe ([`Monitor::poll_timeout`]); the caller runs it and feeds
//! the result back. Events come out of [`Monitor::poll_event`]. Modelled on
//! the sans-I/O style of quinn-proto and str0m.
//!
//! Call order: after any [`Monitor::handle_input`] or
//! [`Monitor::handle_timeout`], drain [`Monitor::poll_event`], then sleep
//! until [`Monitor::poll_timeout`] and call `handle_timeout`.
//!
//! Restarts are not crashes (see the D-Bus contract, "A restart is not a
//! crash"): a clean stop opens the restart grace, and the record waits for
//! its verdict; an unclean loss is recorded at once.

mod record;
mod restart;
mod seen;
mod trial;
mod unit;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub use record::{Activation, Cause, RecoveryRecord, UnitExit};
pub use trial::Trial;
pub use unit::UnitState;

use restart::{Grace, Settle};
use seen::Seen;
use unit::UnitChange;

use crate::health::{JailStats, OfflineReason, ServerStatus};

/// The present moment, as the caller read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: windows and schedules are measured on it.
    pub mono: Instant,
    /// Wall-clock time: what timestamps show.
    pub wall: DateTime<Utc>,
}

impl Now {
    /// The same moment `d` later on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

/// The monitor's timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between the end of one probe and the start of the next.
    pub probe_interval: Duration,
    /// How long after an activation a failure is attributed to it.
    pub crash_window: Duration,
    /// How long a newly activated jail may take to appear.
    pub jail_start_grace: Duration,
    /// Time between probes while an activation's window is open.
    pub watch_interval: Duration,
    /// After a clean stop (a restart), how long fail2ban may take to come
    /// back healthy before the stop counts as a failure.
    pub restart_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(30),
            crash_window: Duration::from_secs(60),
            jail_start_grace: Duration::from_secs(5),
            watch_interval: Duration::from_secs(1),
            restart_grace: Duration::from_secs(15),
        }
    }
}

/// The least time between the end of a probe and one started because the
/// idle connection closed.
const IDLE_CLOSE_FLOOR: Duration = Duration::from_millis(50);

/// How long a unit's exit may precede the record it explains.
const UNIT_EXIT_RELEVANCE: Duration = Duration::from_secs(10);

/// After the socket appears, how long to keep retrying while the new
/// server does not answer yet, and how often.
const STARTUP_RETRY_FOR: Duration = Duration::from_secs(3);
const STARTUP_RETRY_EVERY: Duration = Duration::from_millis(100);

/// After a connection was refused, how long to wait before asking again:
/// a graceful stop of fail2ban 1.1 may refuse for a moment before its
/// socket file goes (it closes the socket, then removes the file), which a
/// crash never does. A timeout is asked again at
/// once: fail2ban 1.1 answers nothing while it stops its jails (about a
/// second per jail), and only then removes its socket.
const REFUSAL_CONFIRM_AFTER: Duration = Duration::from_millis(10);

/// How long a restart grace waits, at most, for systemd to finish stopping
/// fail2ban (systemd's own stop timeout is 90 s by default).
const MAX_STOP_WAIT: Duration = Duration::from_secs(600);

/// After a probe the daemon itself could not make (out of file
/// descriptors, say), the next one waits at least this long.
const LOCAL_RETRY: Duration = Duration::from_secs(1);

/// At most this many recent activations are remembered for
/// `SuspectJails`; older ones inside the window are dropped first.
const MAX_SUSPECTS: usize = 32;

/// What happened, as facts fed to the monitor.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A probe that the monitor asked for has finished.
    ProbeFinished(Result<ServerStatus, OfflineReason>),
    /// The probe the monitor asked for could not be made for a reason of
    /// this process's own (no file descriptor left, no memory for a
    /// socket): nothing was learned about fail2ban, and nothing changes
    /// but the plan for the next probe.
    ProbeAborted,
    /// A manager says this jail was just activated.
    ActivationRegistered {
        /// The jail's name, already validated.
        jail: String,
    },
    /// Someone wants a probe now.
    ProbeRequested,
    /// The connection held open to fail2ban between probes was closed or
    /// reset: fail2ban probably died. Probe now.
    IdleConnectionClosed,
    /// fail2ban's socket file (re)appeared: a server is starting. Probe
    /// now, and again shortly while it is not answering yet.
    SocketAppeared,
    /// fail2ban's systemd unit as reported now: once when it is first
    /// seen, then at every change of its (or its socket's) active state.
    /// Says how fail2ban ended, whether a stop was on purpose, and, under
    /// socket activation, whether the daemon may connect at all.
    UnitChanged(UnitState),
    /// A manager clears the recovery record.
    RecoveryDismissed,
    /// A manager starts rolling back the record's jail. Refused when there
    /// is no record, when it was rolled back already, or while another
    /// rollback runs.
    RollbackStarted,
    /// The rollback started last has ended; `done` when the jail was
    /// disabled and fail2ban answered afterwards. Marks the record of that
    /// activation (and only that one) rolled back, and probes at once.
    RollbackFinished {
        /// The activation the record blamed when the rollback started.
        activation: Activation,
        /// Whether it succeeded.
        done: bool,
    },
    /// A manager wants to try `jail`: takes the one trial slot while its
    /// checks run. Refused while a trial or a rollback runs, while
    /// fail2ban is offline or a record is unresolved, and for a jail that
    /// runs already.
    TrialClaimed {
        /// The jail, already validated.
        jail: String,
    },
    /// The claimed trial did not start (a check failed, the drop-in could
    /// not be written): the slot is free again.
    TrialCancelled,
    /// The claimed trial starts: its line is about to be written and
    /// fail2ban reloaded. Registers the activation.
    TrialStarted {
        /// The jail.
        jail: String,
        /// How long until it is judged.
        timeout: Duration,
        /// The drop-in before the trial's line (`None`: there was none).
        dropin_before: Option<String>,
    },
    /// `Confirm()`: the trial ends now, its jail kept.
    TrialConfirmed,
    /// `Abort()`: the trial's jail is rolled back now.
    TrialAborted,
}
/// Why an input was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `RecoveryDismissed` while there is no record.
    #[error("there is no pending recovery")]
    NoPendingRecovery,
    /// `RollbackStarted` while the record was rolled back already.
    #[error("the pending recovery was rolled back already")]
    RolledBackAlready,
    /// `RollbackStarted` while another rollback runs.
    #[error("a rollback is running already")]
    RollbackRunning,
    /// `RollbackStarted` for a record whose jail was running before its
    /// activation: disabling it would switch off a jail that protected the
    /// machine.
    #[error("jail {0} was running before its activation; disabling it is not a rollback")]
    JailRanBefore(String),
    /// A trial runs already (or is being claimed); also a manual rollback
    /// while a trial runs: the trial owns the rollback.
    #[error("a trial is running")]
    TrialRunning,
    /// `TrialConfirmed` or `TrialAborted` without a trial.
    #[error("no trial is running")]
    NoTrial,
    /// A trial of a jail that runs already.
    #[error("jail {0} is running already")]
    JailRunning(String),
    /// A trial while fail2ban is not healthy.
    #[error("{0}")]
    NotHealthy(String),
}

/// What the monitor wants done or announced.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Start a probe now; feed its result back as [`Input::ProbeFinished`].
    ProbeDue,
    /// fail2ban answered after not answering (or for the first time).
    CameOnline {
        /// Its version.
        version: String,
    },
    /// fail2ban stopped answering.
    WentOffline {
        /// Why.
        reason: OfflineReason,
    },
    /// A recovery record was created.
    CrashDetected {
        /// The new record.
        record: RecoveryRecord,
        /// Monotonic time from the activation to the detection.
        since_activation: Duration,
    },
    /// An unresolved record became resolved.
    RecoveryResolved {
        /// The record's jail.
        jail: String,
        /// When it resolved.
        recovered_at: DateTime<Utc>,
    },
    /// Roll back the trial's jail now: put the drop-in back as it was and
    /// bring fail2ban back; feed the end back as
    /// [`Input::RollbackFinished`] with this activation.
    TrialRollbackDue {
        /// The trial's activation.
        activation: Activation,
        /// What the drop-in held before the trial (`None`: no file).
        dropin_before: Option<String>,
    },
    /// A trial ended.
    TrialEnded {
        /// Its jail.
        jail: String,
        /// Kept (deadline passed healthy, or confirmed) or rolled back.
        kept: bool,
        /// The record's cause when rolled back after a failure, else 0.
        cause: u32,
    },
}

/// Everything published about fail2ban, as one immutable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether the latest probe got a valid answer.
    pub online: bool,
    /// Why not online; [`OfflineReason::None`] while online.
    pub offline_reason: OfflineReason,
    /// fail2ban's version; empty while offline.
    pub version: String,
    /// Running jails, sorted by name; empty while offline.
    pub jails: Vec<JailStats>,
    /// When the latest probe finished.
    pub last_probe: Option<DateTime<Utc>>,
    /// The latest registered activation.
    pub last_activation: Option<Activation>,
    /// The recovery record, resolved or not, until dismissed.
    pub pending_recovery: Option<RecoveryRecord>,
    /// The running trial.
    pub trial: Option<Trial>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            online: false,
            offline_reason: OfflineReason::NotProbedYet,
            version: String::new(),
            jails: Vec::new(),
            last_probe: None,
            last_activation: None,
            pending_recovery: None,
            trial: None,
        }
    }
}

/// What the monitor must not forget across a restart of the daemon: the
/// activations that can still be blamed and the recovery record. Times are
/// wall-clock, since the monotonic clock does not survive a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Memory {
    /// The latest activation.
    pub last_activation: Option<Activation>,
    /// Jails running when it was registered (`None` if fail2ban was offline).
    pub jails_before: Option<Vec<String>>,
    /// Whether a record was attributed to it already.
    pub spent: bool,
    /// Whether its jail was running before it (see
    /// [`RecoveryRecord::ran_before`]).
    pub ran_before: bool,
    /// The jails seen running, each with when it was first seen (`None`:
    /// before the daemon first looked), sorted by name.
    pub seen_jails: Vec<(String, Option<DateTime<Utc>>)>,
    /// Recent activations, oldest first, for `SuspectJails`.
    pub recent: Vec<Activation>,
    /// The recovery record.
    pub record: Option<RecoveryRecord>,
    /// The running trial.
    pub trial: Option<Trial>,
}

/// The latest activation with what the rules need beyond what is shown.
#[derive(Debug, Clone)]
struct Watch {
    shown: Activation,
    at: Instant,
    /// Jails running when the activation was registered (`None` when
    /// fail2ban was offline then: nothing can have vanished).
    jails_before: Option<Vec<String>>,
    /// A record was attributed to this activation already: one activation
    /// yields one record, so a UI does not see the same story twice (for
    /// instance a crash, then fail2ban restarted without the bad jail).
    spent: bool,
    /// The jail was running before the activation (or when fail2ban was
    /// last seen online).
    ran_before: bool,
    /// How long failures are attributed to it: the crash window, or a
    /// trial's length when longer.
    window: Duration,
}

/// Whether a way of going offline is one fail2ban or systemd chose: a
/// graceful stop removes the socket or answers `SHUTDOWN`, and a stopped
/// service under socket activation is inactive.
fn clean(reason: OfflineReason) -> bool {
    matches!(
        reason,
        OfflineReason::SocketMissing | OfflineReason::ShuttingDown | OfflineReason::Inactive
    )
}

/// The crash-attribution state machine.
#[derive(Debug)]
pub struct Monitor {
    timing: Timing,
    snapshot: Snapshot,
    watch: Option<Watch>,
    /// Activations whose window may still be open, oldest first.
    recent: VecDeque<(Activation, Instant)>,
    probe_in_flight: bool,
    /// A rollback has started and not finished: no record is made while
    /// it restarts fail2ban.
    rollback_running: bool,
    /// The running trial.
    trial: Option<trial::Running>,
    /// A trial is claimed and runs its checks.
    trial_claimed: bool,
    /// Since when each jail has been running.
    seen: Seen,
    /// Start another probe as soon as the one in flight ends.
    probe_again: bool,
    /// Retry quickly until then while offline: a server is starting.
    startup_until: Option<Instant>,
    /// The latest failure of fail2ban's unit, for a record that follows it.
    unit_exit: Option<(UnitExit, Instant)>,
    /// fail2ban's unit as last reported, if it runs as one.
    unit: Option<UnitState>,
    /// A clean stop awaits its verdict.
    grace: Option<Grace>,
    /// fail2ban came back and its jail list is not judged yet.
    settle: Option<Settle>,
    /// fail2ban went offline refusing connections or not answering, at
    /// this moment, for this reason: asked again before that counts as a
    /// crash.
    unconfirmed: Option<(Instant, OfflineReason)>,
    /// The held connection was closed while fail2ban was online; an answer
    /// before any stop is seen comes from a new server.
    held_lost: bool,
    /// When the latest probe ended.
    last_probe_end: Option<Instant>,
    next_probe: Instant,
    events: VecDeque<Event>,
}

impl Monitor {
    /// A monitor that has probed nothing yet; its first probe is due at once.
    pub fn new(timing: Timing, now: Now) -> Self {
        Self {
            timing,
            snapshot: Snapshot::default(),
            watch: None,
            recent: VecDeque::new(),
            probe_in_flight: false,
            rollback_running: false,
            trial: None,
            trial_claimed: false,
            seen: Seen::default(),
            probe_again: false,
            startup_until: None,
            unit_exit: None,
            unit: None,
            grace: None,
            settle: None,
            unconfirmed: None,
            held_lost: false,
            last_probe_end: None,
            next_probe: now.mono,
            events: VecDeque::new(),
        }
    }

    /// A monitor that remembers `memory`, saved by an earlier run. An
    /// activation's window continues by wall-clock time: what elapsed on
    /// the wall clock since it was registered counts, a clock set back
    /// counts as no time.
    pub fn restored(timing: Timing, now: Now, memory: Memory) -> Self {
        let mut m = Self::new(timing, now);
        let mono_of = |a: &Activation| -> Option<Instant> {
            let elapsed = (now.wall - a.activated_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if elapsed > timing.crash_window {
                return None;
            }
            now.mono.checked_sub(elapsed)
        };
        m.recent = memory
            .recent
            .iter()
            .filter_map(|a| mono_of(a).map(|at| (a.clone(), at)))
            .collect();
        if let Some(latest) = &memory.last_activation
            && let Some(at) = mono_of(latest)
        {
            m.watch = Some(Watch {
                shown: latest.clone(),
                at,
                jails_before: memory.jails_before.clone(),
                spent: memory.spent,
                ran_before: memory.ran_before,
                window: timing.crash_window,
            });
        }
        m.seen = Seen::restored(&memory.seen_jails, now);
        m.snapshot.last_activation = memory.last_activation;
        m.snapshot.pending_recovery = memory.record;
        if let Some(trial) = memory.trial {
            m.restore_trial(now, trial);
        }
        m
    }

    /// What must survive a restart; see [`Memory`].
    pub fn memory(&self) -> Memory {
        Memory {
            last_activation: self.snapshot.last_activation.clone(),
            jails_before: self.watch.as_ref().and_then(|w| w.jails_before.clone()),
            spent: self.watch.as_ref().is_some_and(|w| w.spent),
            ran_before: self.watch.as_ref().is_some_and(|w| w.ran_before),
            seen_jails: self.seen.remembered(),
            recent: self.recent.iter().map(|(a, _)| a.clone()).collect(),
            record: self.snapshot.pending_recovery.clone(),
            trial: self.snapshot.trial.clone(),
        }
    }

    /// The monitor's timing settings.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The current published state.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// fail2ban's unit as last reported, if it runs as one.
    pub fn unit(&self) -> Option<&UnitState> {
        self.unit.as_ref()
    }

    /// Whether a probe is running.
    pub fn probe_in_flight(&self) -> bool {
        self.probe_in_flight
    }

    /// Why the daemon must not connect to fail2ban now (socket activation
    /// with the service not running); `None` when it may.
    pub fn connect_gate(&self) -> Option<OfflineReason> {
        self.unit.as_ref().and_then(UnitState::gate)
    }

    /// When [`Monitor::handle_timeout`] should next be called: the next
    /// probe (none while one runs or while connecting is not allowed) or
    /// the end of a restart grace, whichever comes first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let probe =
            (!self.probe_in_flight && self.connect_gate().is_none()).then_some(self.next_probe);
        // Once fail2ban is back, the settling of its jail list gives the
        // verdict, not the clock.
        let grace = self
            .grace
            .as_ref()
            .filter(|g| !g.came_back)
            .map(|g| g.until);
        probe
            .into_iter()
            .chain(grace)
            .chain(self.trial_deadline())
            .min()
    }

    /// Lets time pass: ends a restart grace that is over, and emits
    /// [`Event::ProbeDue`] when a probe is due.
    pub fn handle_timeout(&mut self, now: Now) {
        if self
            .grace
            .as_ref()
            .is_some_and(|g| !g.came_back && now.mono >= g.until)
        {
            self.grace_ended(now);
        }
        self.trial_step(now);
        if !self.probe_in_flight && self.connect_gate().is_none() && now.mono >= self.next_probe {
            self.probe_in_flight = true;
            self.probe_again = false;
            self.events.push_back(Event::ProbeDue);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Feeds a fact.
    ///
    /// # Errors
    /// [`Refusal`] when the input is refused; nothing changed then.
    pub fn handle_input(&mut self, now: Now, input: Input) -> Result<(), Refusal> {
        self.apply_input(now, input)?;
        self.trial_step(now);
        Ok(())
    }

    fn apply_input(&mut self, now: Now, input: Input) -> Result<(), Refusal> {
        match input {
            Input::ProbeFinished(result) => self.probe_finished(now, result),
            Input::ProbeAborted => {
                if self.probe_in_flight {
                    self.probe_in_flight = false;
                    self.last_probe_end = Some(now.mono);
                    self.schedule(now);
                    // Whatever was due at once (a timeout to confirm, say)
                    // waits: the daemon's own shortage does not pass in a
                    // moment, and retrying at once would spin.
                    self.next_probe = self.next_probe.max(now.mono + LOCAL_RETRY);
                }
            }
            Input::ActivationRegistered { jail } => self.activation(now, jail),
            Input::ProbeRequested => self.request_probe(now),
            Input::IdleConnectionClosed => self.idle_connection_closed(now),
            Input::UnitChanged(state) => self.unit_changed(now, state),
            Input::SocketAppeared => {
                // While a probe runs, "online" may be stale: act anyway.
                if !self.snapshot.online || self.probe_in_flight {
                    self.server_starting(now);
                }
            }
            Input::RecoveryDismissed => {
                if self.snapshot.pending_recovery.is_none() {
                    return Err(Refusal::NoPendingRecovery);
                }
                // The rollback owns the record until it ends.
                if self.rollback_running {
                    return Err(Refusal::RollbackRunning);
                }
                self.snapshot.pending_recovery = None;
            }
            Input::RollbackStarted => match &self.snapshot.pending_recovery {
                None => return Err(Refusal::NoPendingRecovery),
                // The trial rolls its own jail back.
                Some(_) if self.trial.is_some() || self.trial_claimed => {
                    return Err(Refusal::TrialRunning);
                }
                Some(_) if self.rollback_running => return Err(Refusal::RollbackRunning),
                Some(r) if r.rolled_back => return Err(Refusal::RolledBackAlready),
                Some(r) if r.ran_before => {
                    return Err(Refusal::JailRanBefore(r.jail_name.clone()));
                }
                Some(_) => {
                    self.rollback_running = true;
                    // The restart the rollback causes is nobody's crash:
                    // the activations registered before it are done with.
                    if let Some(w) = self.watch.as_mut() {
                        w.spent = true;
                    }
                }
            },
            Input::RollbackFinished { activation, done } => {
                self.rollback_running = false;
                // A grace the rollback's restart opened is its own.
                self.grace = None;
                if let Some(r) = self.snapshot.pending_recovery.as_mut()
                    && done
                    && r.jail_name == activation.jail_name
                    && r.activated_at == activation.activated_at
                {
                    r.rolled_back = true;
                }
                self.trial_rollback_finished(&activation, done);
                self.request_probe(now);
            }
            trial @ (Input::TrialClaimed { .. }
            | Input::TrialCancelled
            | Input::TrialStarted { .. }
            | Input::TrialConfirmed
            | Input::TrialAborted) => return self.trial_input(now, trial),
        }
        Ok(())
    }

    fn request_probe(&mut self, now: Now) {
        if self.probe_in_flight {
            self.probe_again = true;
        } else {
            self.next_probe = self.next_probe.min(now.mono);
        }
    }

    /// A server is starting: probe now, and again shortly while it does
    /// not answer yet.
    fn server_starting(&mut self, now: Now) {
        self.startup_until = Some(now.mono + STARTUP_RETRY_FOR);
        self.request_probe(now);
    }

    fn idle_connection_closed(&mut self, now: Now) {
        if self.snapshot.online {
            self.held_lost = true;
        }
        // Under socket activation a connection now could start fail2ban
        // again after it exited on its own: the unit's report says what
        // happened and asks for the probe.
        if self.unit.as_ref().is_some_and(UnitState::socket_activated) {
            return;
        }
        // At once, but never back to back with the previous probe: a peer
        // that closes every connection cannot spin us.
        let floor = self
            .last_probe_end
            .map_or(now.mono, |t| t + IDLE_CLOSE_FLOOR);
        if self.probe_in_flight {
            self.probe_again = true;
        } else {
            self.next_probe = self.next_probe.min(floor.max(now.mono));
        }
    }

    fn activation(&mut self, now: Now, jail: String) {
        let shown = Activation {
            jail_name: jail,
            activated_at: now.wall,
        };
        let jails_before = self
            .snapshot
            .online
            .then(|| self.snapshot.jails.iter().map(|j| j.name.clone()).collect());
        // Running for a whole crash window already (or since before the
        // daemon first looked): not a jail a probe happened to see just
        // before its activation was registered.
        let ran_before = self
            .seen
            .ran_for(&shown.jail_name, self.timing.crash_window, now.mono);
        self.snapshot.last_activation = Some(shown.clone());
        self.recent.push_back((shown.clone(), now.mono));
        self.forget_old_activations(now);
        self.watch = Some(Watch {
            shown,
            at: now.mono,
            jails_before,
            spent: false,
            ran_before,
            window: self.timing.crash_window,
        });
        self.request_probe(now);
    }

    /// Keeps only activations that can still be blamed, and a bounded
    /// number of them.
    fn forget_old_activations(&mut self, now: Now) {
        let window = self.timing.crash_window;
        while let Some((_, at)) = self.recent.front() {
            if now.mono.saturating_duration_since(*at) > window || self.recent.len() > MAX_SUSPECTS
            {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Every jail activated within the window before `now`, newest first,
    /// each once.
    fn suspects(&mut self, now: Now) -> Vec<String> {
        self.forget_old_activations(now);
        let mut names: Vec<String> = Vec::new();
        for (a, _) in self.recent.iter().rev() {
            if !names.contains(&a.jail_name) {
                names.push(a.jail_name.clone());
            }
        }
        names
    }

    fn window_open(&self, watch: &Watch, now: Now) -> bool {
        now.mono.saturating_duration_since(watch.at) <= watch.window
    }

    /// The activation a failure now would be attributed to, if any.
    fn blamable(&self, now: Now) -> Option<Watch> {
        self.watch
            .clone()
            .filter(|w| !w.spent && self.window_open(w, now))
    }

    fn probe_finished(&mut self, now: Now, result: Result<ServerStatus, OfflineReason>) {
        self.probe_in_flight = false;
        self.last_probe_end = Some(now.mono);
        self.snapshot.last_probe = Some(now.wall);
        if let Some(t) = self.trial.as_mut().filter(|t| t.judging) {
            t.probed_since_due = true;
        }
        let held_lost = std::mem::take(&mut self.held_lost);
        // A probe started before the units said fail2ban is down: they win.
        let result = match self.connect_gate() {
            Some(reason) => Err(reason),
            None => result,
        };
        match result {
            Ok(status) => self.answered(now, status, held_lost),
            Err(reason) => {
                // A probe failure never reports "none" or "not probed";
                // systemd's view of the unit says more than a socket can.
                let reason = match reason {
                    OfflineReason::None | OfflineReason::NotProbedYet => {
                        OfflineReason::ProtocolError
                    }
                    r => r,
                };
                let reason = self
                    .unit
                    .as_ref()
                    .and_then(UnitState::offline_reason)
                    .unwrap_or(reason);
                self.went_offline(now, reason);
            }
        }
        self.schedule(now);
    }

    /// fail2ban answered a probe.
    fn answered(&mut self, now: Now, status: ServerStatus, held_lost: bool) {
        let was_online = self.snapshot.online;
        // Before the first probe nothing was seen offline (the daemon just
        // started, possibly with a record restored from disk).
        let seen_offline =
            !was_online && self.snapshot.offline_reason != OfflineReason::NotProbedYet;
        let before = self.jail_names();
        self.snapshot.online = true;
        self.snapshot.offline_reason = OfflineReason::None;
        self.snapshot.version = status.version;
        self.snapshot.jails = status.jails;
        let names = self.jail_names();
        self.seen.saw(&names, now);
        let judging = self.grace.is_some() || self.blamable(now).is_some();
        if was_online {
            if let Some(settle) = self.settle.as_mut() {
                if settle.settled(now.mono, names) {
                    self.settle = None;
                }
            } else if judging && names != before {
                // A list that just changed is judged once it holds still: a
                // stopping fail2ban 1.1 answers with its jails gone just
                // before its socket goes.
                self.settle = Some(Settle::new(now.mono, names));
            }
        } else {
            self.events.push_back(Event::CameOnline {
                version: self.snapshot.version.clone(),
            });
            // Only a jail list that can still be judged needs to settle.
            if judging {
                self.settle = Some(Settle::new(now.mono, names));
            }
            // An answer while systemd still stops fail2ban comes from the
            // old server, not from its return.
            let stopping = self.unit_stopping();
            if let Some(grace) = self.grace.as_mut().filter(|_| !stopping) {
                grace.came_back = true;
            }
        }
        if seen_offline {
            // Back online after being offline resolves any cause.
            self.resolve(now);
        }
        self.resolve_cleared(now);
        // A server that answers right after the held connection was lost,
        // or right after refusing connections, with no stop seen, is a new
        // one: the old one crashed and was restarted at once. (One that
        // answers after a timeout was only slow.)
        let refused = matches!(
            self.unconfirmed.take(),
            Some((_, OfflineReason::ConnectionRefused))
        );
        if self.grace.is_none() && (held_lost && was_online || refused) {
            let reason = if held_lost && was_online {
                OfflineReason::ConnectionLost
            } else {
                OfflineReason::ConnectionRefused
            };
            self.failure(now, Cause::WentOffline(reason));
        }
        if self.settle.is_some() {
            return;
        }
        match &self.grace {
            Some(g) if g.came_back => {
                let grace = self.grace.take();
                self.judge_return(now, grace);
            }
            // The old server still answers while it stops.
            Some(_) => {}
            None => self.check_jails(now),
        }
    }

    fn jail_names(&self) -> Vec<String> {
        self.snapshot.jails.iter().map(|j| j.name.clone()).collect()
    }

    /// fail2ban is offline for `reason`: publishes it and applies the
    /// restart rules to a new loss.
    fn went_offline(&mut self, now: Now, reason: OfflineReason) {
        let was_online = self.snapshot.online;
        if was_online && clean(reason) {
            self.stopped_after_return(now);
        }
        self.snapshot.online = false;
        self.snapshot.offline_reason = reason;
        self.snapshot.version.clear();
        self.snapshot.jails.clear();
        self.settle = None;
        if was_online {
            self.events.push_back(Event::WentOffline { reason });
        }
        let unconfirmed = self.unconfirmed.take();
        if was_online || unconfirmed.is_some() {
            self.judge_loss(now, reason, unconfirmed);
        }
    }

    /// A loss of fail2ban: a clean one opens the restart grace, an unclean
    /// one is a failure at once, a refusal or a timeout after being asked
    /// once more (`unconfirmed`: when and why the first was seen).
    fn judge_loss(
        &mut self,
        now: Now,
        reason: OfflineReason,
        unconfirmed: Option<(Instant, OfflineReason)>,
    ) {
        let ask_again = matches!(
            reason,
            OfflineReason::ConnectionRefused | OfflineReason::Timeout
        );
        match &self.grace {
            // Down again before the grace's verdict.
            Some(g) if g.came_back => self.failure(now, Cause::WentOffline(reason)),
            // Still the same stop.
            Some(_) => {}
            None if clean(reason) => self.open_grace(now),
            None if ask_again && unconfirmed.is_none() => {
                if self.blamable(now).is_some() {
                    self.unconfirmed = Some((now.mono, reason));
                }
            }
            None => {
                // Recorded as first seen, judged by the window then.
                let (seen, first) = unconfirmed.unwrap_or((now.mono, reason));
                self.failure_seen(now, seen, Cause::WentOffline(first));
            }
        }
    }

    /// A new clean stop (another restart) while the return from the last
    /// one is not judged yet: that return is judged by the jails it showed,
    /// and the new stop gets a grace of its own.
    fn stopped_after_return(&mut self, now: Now) {
        if self.grace.as_ref().is_some_and(|g| g.came_back) {
            let grace = self.grace.take();
            // A list still settling says nothing yet; the next return is
            // judged instead.
            if self.settle.take().is_none() {
                self.judge_return(now, grace);
            }
        }
    }

    /// A clean stop inside an activation's window: the verdict waits.
    fn open_grace(&mut self, now: Now) {
        if self.grace.is_none()
            && let Some(watch) = self.blamable(now)
        {
            self.grace = Some(Grace {
                opened: now.mono,
                until: now.mono + self.timing.restart_grace,
                came_back: false,
                activation_at: watch.at,
            });
        }
    }

    /// The restart grace is over before fail2ban came back settled. Judged
    /// as at the grace's end, however late the caller noticed.
    fn grace_ended(&mut self, now: Now) {
        // systemd is still stopping fail2ban (1.1 takes about a second per
        // jail): the grace counts from when the stop is over, and systemd
        // bounds the stop itself.
        let grace = self.timing.restart_grace;
        if let Some(g) = self
            .grace
            .as_mut()
            .filter(|g| now.mono < g.opened + MAX_STOP_WAIT)
            && self
                .unit
                .as_ref()
                .is_some_and(|u| u.active_state == "deactivating")
        {
            g.until = now.mono + grace.max(Duration::from_secs(1));
            return;
        }
        let now = match &self.grace {
            Some(g) if g.until < now.mono => Now {
                mono: g.until,
                wall: now.wall - (now.mono - g.until),
            },
            _ => now,
        };
        if self.snapshot.online {
            let grace = self.grace.take();
            self.settle = None;
            self.judge_return(now, grace);
        } else {
            self.failure(now, Cause::WentOffline(self.snapshot.offline_reason));
        }
    }

    /// A failure now: recorded against the latest activation if its window
    /// is open, or if a restart grace it opened was still running.
    fn failure(&mut self, now: Now, cause: Cause) {
        self.failure_seen(now, now.mono, cause);
    }

    /// A failure first seen at `seen` (judged by the window then), recorded
    /// now.
    fn failure_seen(&mut self, now: Now, seen: Instant, cause: Cause) {
        let in_grace = self.grace.take().is_some();
        // The signs that led here are used up: a lost connection or a
        // refusal seen before explains this failure, not another.
        self.unconfirmed = None;
        self.held_lost = false;
        let in_window = |w: &Watch| seen.saturating_duration_since(w.at) <= w.window;
        if let Some(watch) = self.watch.clone().filter(|w| in_grace || in_window(w)) {
            self.record(now, &watch, cause);
        }
    }

    fn unit_changed(&mut self, now: Now, next: UnitState) {
        let change = self
            .unit
            .as_ref()
            .map_or(UnitChange::Nothing, |before| before.change_to(&next));
        let was_stopping = self.unit_stopping();
        self.unit = Some(next);
        if was_stopping && !self.unit_stopping() {
            // The stop is over: the new server gets the whole grace.
            let grace = self.timing.restart_grace;
            if let Some(g) = self.grace.as_mut().filter(|g| !g.came_back) {
                g.until = now.mono + grace;
            }
        }
        match change {
            UnitChange::Failed(exit) => self.unit_failed(now, exit),
            UnitChange::StoppedCleanly => {
                // A refusal or timeout seen just before was this stop's.
                self.unconfirmed = None;
                if self.snapshot.online {
                    self.stopped_after_return(now);
                }
                self.open_grace(now);
                self.request_probe(now);
            }
            UnitChange::Started => self.server_starting(now),
            UnitChange::Nothing => {}
        }
        if let Some(reason) = self.connect_gate() {
            self.went_offline(now, reason);
        } else if let Some(reason) = self.unit.as_ref().and_then(UnitState::offline_reason)
            && !self.snapshot.online
        {
            self.snapshot.offline_reason = reason;
        }
    }

    fn unit_stopping(&self) -> bool {
        self.unit
            .as_ref()
            .is_some_and(|u| u.active_state == "deactivating")
    }

    /// fail2ban's unit failed, was killed, or was restarted by systemd
    /// after a failure: a crash, even if fail2ban answers again already.
    fn unit_failed(&mut self, now: Now, exit: Option<UnitExit>) {
        // The lost connection, if any, was this failure's.
        self.held_lost = false;
        let Some(exit) = exit else {
            // Seen only once systemd had restarted it: how it ended is gone.
            self.unit_exit = None;
            self.crash_while(now);
            self.request_probe(now);
            return;
        };
        let attached = match self.snapshot.pending_recovery.as_mut() {
            // A clean stop (a restart's) gives way to the failure that
            // follows it, which says more.
            Some(r)
                if !r.recovered()
                    && r.unit_exit.as_ref().is_none_or(|u| u.result == "success")
                    && matches!(r.cause, Cause::WentOffline(_)) =>
            {
                r.unit_exit = Some(exit.clone());
                true
            }
            _ => false,
        };
        self.unit_exit = Some((exit, now.mono));
        if !attached {
            self.crash_while(now);
        }
        self.request_probe(now);
    }

    /// A crash systemd reported: recorded with the reason seen now (a lost
    /// connection, if fail2ban was answering until then).
    fn crash_while(&mut self, now: Now) {
        let reason = if self.snapshot.online {
            OfflineReason::ConnectionLost
        } else {
            self.snapshot.offline_reason
        };
        self.failure(now, Cause::WentOffline(reason));
    }

    /// Causes 2 and 3, once the grace has passed inside the window.
    fn check_jails(&mut self, now: Now) {
        let Some(watch) = self.watch.clone() else {
            return;
        };
        let age = now.mono.saturating_duration_since(watch.at);
        if age < self.timing.jail_start_grace || !self.window_open(&watch, now) {
            return;
        }
        self.judge_jails(now, &watch);
    }

    /// The verdict on a restart: fail2ban is back, its jails settled.
    /// An activation registered after the stop is not judged by this
    /// return: its jail had no chance to start yet, and its own rules (the
    /// start grace, then the close watch) judge it.
    fn judge_return(&mut self, now: Now, grace: Option<Grace>) {
        if let Some(watch) = self
            .watch
            .clone()
            .filter(|w| grace.as_ref().is_none_or(|g| g.activation_at == w.at))
        {
            self.judge_jails(now, &watch);
        }
    }

    /// Records cause 3 when jails that ran before are gone, else cause 2
    /// when the activated jail does not run.
    fn judge_jails(&mut self, now: Now, watch: &Watch) {
        let running = |name: &String| self.snapshot.jails.iter().any(|j| &j.name == name);
        let vanished: Vec<String> = watch
            .jails_before
            .iter()
            .flatten()
            .filter(|j| !running(j))
            .cloned()
            .collect();
        if !vanished.is_empty() {
            self.record(now, watch, Cause::JailsVanished(vanished));
        } else if !running(&watch.shown.jail_name) {
            self.record(now, watch, Cause::JailNotRunning);
        }
    }

    /// Creates a record unless an unresolved one exists or this activation
    /// already has had one.
    /// Never while a rollback restarts fail2ban.
    fn record(&mut self, now: Now, watch: &Watch, cause: Cause) {
        let unresolved = matches!(&self.snapshot.pending_recovery, Some(r) if !r.recovered());
        if unresolved || watch.spent || self.rollback_running {
            return;
        }
        if let Some(w) = self.watch.as_mut() {
            w.spent = true;
        }
        let mut suspect_jails = self.suspects(now);
        if suspect_jails.is_empty() {
            suspect_jails.push(watch.shown.jail_name.clone());
        }
        let unit_exit = match (&cause, self.unit_exit.take()) {
            (Cause::WentOffline(_), Some((exit, at)))
                if now.mono.saturating_duration_since(at) <= UNIT_EXIT_RELEVANCE =>
            {
                Some(exit)
            }
            _ => None,
        };
        let record = RecoveryRecord {
            jail_name: watch.shown.jail_name.clone(),
            activated_at: watch.shown.activated_at,
            detected_at: now.wall,
            recovered_at: None,
            cause,
            suspect_jails,
            unit_exit,
            rolled_back: false,
            auto_rolled_back: false,
            ran_before: watch.ran_before,
        };
        self.snapshot.pending_recovery = Some(record.clone());
        self.events.push_back(Event::CrashDetected {
            record,
            since_activation: now.mono.saturating_duration_since(watch.at),
        });
    }

    /// Resolves an unresolved record, whatever its cause.
    fn resolve(&mut self, now: Now) {
        if let Some(record) = self
            .snapshot
            .pending_recovery
            .as_mut()
            .filter(|r| !r.recovered())
        {
            record.recovered_at = Some(now.wall);
            self.events.push_back(Event::RecoveryResolved {
                jail: record.jail_name.clone(),
                recovered_at: now.wall,
            });
        }
    }

    /// Resolves a cause-2 or cause-3 record whose condition has cleared.
    fn resolve_cleared(&mut self, now: Now) {
        let running = |name: &String| self.snapshot.jails.iter().any(|j| &j.name == name);
        let cleared = match &self.snapshot.pending_recovery {
            Some(r) if !r.recovered() => match &r.cause {
                // A rolled-back jail is not expected to run any more.
                Cause::JailNotRunning => r.rolled_back || running(&r.jail_name),
                Cause::JailsVanished(jails) => jails.iter().all(running),
                // Online is what a cause-1 record waits for.
                Cause::WentOffline(_) => true,
            },
            _ => false,
        };
        if cleared {
            self.resolve(now);
        }
    }

    /// Plans the next probe: an interval after this one ends, sooner when
    /// someone asked during it, and never missing the first moment after
    /// an activation's grace inside its window.
    fn schedule(&mut self, now: Now) {
        let mut next = now.mono + self.timing.probe_interval;
        if self.probe_again {
            next = now.mono;
            self.probe_again = false;
        }
        match self.startup_until {
            Some(until) if !self.snapshot.online && now.mono < until => {
                next = next.min(now.mono + STARTUP_RETRY_EVERY);
            }
            _ => self.startup_until = None,
        }
        match self.unconfirmed {
            Some((_, OfflineReason::ConnectionRefused)) => {
                next = next.min(now.mono + REFUSAL_CONFIRM_AFTER);
            }
            Some(_) => next = now.mono,
            None => {}
        }
        if self.settle.is_some() {
            next = next.min(now.mono + restart::SETTLE_EVERY);
        }
        if self.grace.is_some() {
            next = next.min(now.mono + self.timing.watch_interval);
        }
        if let Some(watch) = &self.watch {
            let grace_end = watch.at + self.timing.jail_start_grace;
            let window_end = watch.at + watch.window;
            if now.mono < grace_end && grace_end <= window_end {
                next = next.min(grace_end);
            }
            // Close watch while the window is open, so causes 2 and 3 are
            // found within a watch interval of happening.
            if now.mono < window_end {
                next = next.min((now.mono + self.timing.watch_interval).min(window_end));
            }
        }
        self.next_probe = next;
    }
}
