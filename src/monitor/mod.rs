//! The crash-attribution state machine: pure, no I/O, no clock reads, no
//! tokio.
//!
//! Owns the published state (online status, latest activation, recovery
//! record, trial) and the rules that turn probe results, unit reports and
//! commands into actions and events. Every input carries [`Now`]: a
//! monotonic instant, on which all windows and schedules are measured (so
//! a wall-clock jump changes nothing), and the wall-clock time shown to
//! people. Modelled on the sans-I/O style of quinn-proto's `Connection`
//! and str0m's `Rtc`.
//!
//! # Call order
//!
//! 1. Build with [`Monitor::new`], or [`Monitor::restored`] from what a
//!    previous run kept ([`Monitor::memory`]).
//! 2. Getters, at any time, change nothing: [`Monitor::snapshot`],
//!    [`Monitor::memory`], [`Monitor::unit`], [`Monitor::probe_in_flight`],
//!    [`Monitor::connect_gate`], [`Monitor::timing`].
//! 3. `handle_*` feeds it: [`Monitor::handle_input`] for a fact (an
//!    [`Input`]; a [`Refusal`] changes nothing), [`Monitor::handle_timeout`]
//!    once the instant of `poll_timeout` has come (calling it early is
//!    harmless; calling it at once after an input starts a probe that
//!    input asked for without a trip through the caller's timer).
//! 4. `poll_*` says what to do and what happened. After **every**
//!    `handle_*` call, the caller must:
//!    1. drain [`Monitor::poll_action`] and carry out each [`Action`]
//!       (start the probe, start the trial's rollback), feeding its end
//!       back later as an input;
//!    2. drain [`Monitor::poll_event`] and announce each [`Event`] (1 and
//!       2 in either order: neither queue depends on the other);
//!    3. re-read [`Monitor::poll_timeout`] (any input may move it; `None`:
//!       nothing to wake for) and call `handle_timeout` then.
//!
//!    The snapshot and memory may have changed too: publish and persist
//!    them after the same calls.
//!
//! # Layout
//!
//! - `time`: [`Now`] and [`Timing`].
//! - `input`: [`Input`] and [`Refusal`].
//! - `output`: [`Action`] and [`Event`].
//! - `snapshot`: [`Snapshot`], the published state.
//! - `memory`: [`Memory`], what survives a restart, and
//!   [`Monitor::restored`].
//! - `record`: [`Activation`], [`Cause`], [`RecoveryRecord`], [`UnitExit`].
//! - `window`: activation windows and suspects.
//! - `attribution`: which failure is blamed on which activation (causes 1
//!   to 3) and the record made of it.
//! - `recovery`: a record's life after it is made: resolution, dismissal,
//!   a manager's rollback.
//! - `probe`: what a finished probe tells (online, offline).
//! - `schedule`: when the next probe runs.
//! - `restart`: why a restart is not a crash: the restart grace and the
//!   settling of a returned server's jail list.
//! - `unit`: fail2ban's systemd unit ([`UnitState`]) and its rules.
//! - `seen`: since when each jail has been running.
//! - `trial`: trials ([`Trial`]): `Try`, `Confirm`, `Abort`.
//!
//! # Vocabulary
//!
//! Each word has one meaning here:
//! - *activation*: a manager's "jail X was just switched on"
//!   ([`Activation`]).
//! - *activation window*: the time after the latest activation during
//!   which a failure is attributed to it (`crash_window`, or a trial's
//!   length when longer); *spent* once it yielded a record.
//! - *close watch*: probing every [`Timing::watch_interval`] while an
//!   activation window is open. "Watch" means nothing else in this module.
//! - *jail start grace*: how long an activated jail may take to appear
//!   ([`Timing::jail_start_grace`]).
//! - *restart grace*: after a clean stop inside a window, how long
//!   fail2ban may take to come back ([`Timing::restart_grace`]); field
//!   `grace`.
//! - *settle*: a returned server's jail list holding still before it is
//!   judged.
//! - *unconfirmed*: a refusal or timeout that is asked about once more
//!   before it counts.
//! - *record*: the recovery record ([`RecoveryRecord`]); *resolved* once
//!   its failure cleared, *dismissed* when a manager clears it.
//! - *action*: something the caller must do ([`Action`]); *event*:
//!   something that happened ([`Event`]).
//! - *gate*: under socket activation, why the daemon must not connect
//!   now ([`Monitor::connect_gate`]).

mod attribution;
mod input;
mod memory;
mod output;
mod probe;
mod record;
mod recovery;
mod restart;
mod schedule;
mod seen;
mod snapshot;
mod time;
mod trial;
mod unit;
mod window;

use std::collections::VecDeque;
use std::time::Instant;

pub use input::{Input, Refusal};
pub use memory::Memory;
pub use output::{Action, Event};
pub use record::{Activation, Cause, RecoveryRecord, UnitExit};
pub use snapshot::Snapshot;
pub use time::{Now, Timing};
pub use trial::Trial;
pub use unit::UnitState;

use restart::{RestartGrace, Settle};
use seen::Seen;
use window::ActivationWindow;

use crate::health::OfflineReason;

/// The crash-attribution state machine. See the [module](self) for the
/// call order.
#[derive(Debug)]
pub struct Monitor {
    timing: Timing,
    /// What is published; every rule writes its outcome here.
    snapshot: Snapshot,
    /// The latest activation's window.
    window: Option<ActivationWindow>,
    /// Activations whose window may still be open, oldest first: the
    /// suspects of a record.
    recent: VecDeque<(Activation, Instant)>,
    /// An [`Action::StartProbe`] was given and its end not fed back yet.
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
    grace: Option<RestartGrace>,
    /// fail2ban came back and its jail list is not judged yet.
    settle: Option<Settle>,
    /// fail2ban went offline refusing connections or not answering, at
    /// this moment, for this reason: asked again before that counts as a
    /// crash.
    unconfirmed: Option<(Instant, OfflineReason)>,
    /// The held connection was closed while fail2ban was online; an answer
    /// before any stop is seen comes from a new server.
    held_connection_lost: bool,
    /// When the latest probe ended.
    last_probe_end: Option<Instant>,
    /// When the next probe is planned.
    next_probe: Instant,
    /// Actions not yet polled.
    actions: VecDeque<Action>,
    /// Events not yet polled.
    events: VecDeque<Event>,
}

impl Monitor {
    /// A monitor that has probed nothing yet; its first probe is due at once.
    pub fn new(timing: Timing, now: Now) -> Self {
        Self {
            timing,
            snapshot: Snapshot::default(),
            window: None,
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
            held_connection_lost: false,
            last_probe_end: None,
            next_probe: now.mono,
            actions: VecDeque::new(),
            events: VecDeque::new(),
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

    /// Feeds a fact. Then drain [`Monitor::poll_action`] and
    /// [`Monitor::poll_event`], and re-read [`Monitor::poll_timeout`].
    ///
    /// # Errors
    /// [`Refusal`] when the input is refused; nothing changed then.
    pub fn handle_input(&mut self, now: Now, input: Input) -> Result<(), Refusal> {
        self.apply_input(now, input)?;
        self.trial_step(now);
        Ok(())
    }

    /// Lets time pass: ends a restart grace that is over, judges a trial
    /// whose deadline has come, and gives [`Action::StartProbe`] when a
    /// probe is due. Then drain the outputs as after
    /// [`Monitor::handle_input`].
    pub fn handle_timeout(&mut self, now: Now) {
        if self
            .grace
            .as_ref()
            .is_some_and(|g| !g.came_back && now.mono >= g.until)
        {
            self.grace_ended(now);
        }
        self.trial_step(now);
        self.start_due_probe(now);
    }

    /// The next thing to do, if any; see [`Action`].
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing that happened, if any; see [`Event`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Monitor::handle_timeout`] should next be called: the next
    /// probe (none while one runs or while connecting is not allowed), the
    /// end of a restart grace, or a trial's deadline, whichever comes
    /// first. An instant already past means now.
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

    /// Dispatches an input to the rules of its concept.
    fn apply_input(&mut self, now: Now, input: Input) -> Result<(), Refusal> {
        match input {
            Input::ProbeFinished(result) => self.probe_finished(now, result),
            Input::ProbeAborted => self.probe_aborted(now),
            Input::ActivationRegistered { jail } => self.register_activation(now, jail),
            Input::ProbeRequested => self.request_probe(now),
            Input::IdleConnectionClosed => self.idle_connection_closed(now),
            Input::UnitChanged(state) => self.unit_changed(now, state),
            Input::SocketAppeared => self.socket_appeared(now),
            Input::RecoveryDismissed => return self.dismiss_recovery(),
            Input::RollbackStarted => return self.start_rollback(),
            Input::RollbackFinished { activation, done } => {
                self.finish_rollback(now, &activation, done);
            }
            trial @ (Input::TrialClaimed { .. }
            | Input::TrialCancelled
            | Input::TrialStarted { .. }
            | Input::TrialConfirmed
            | Input::TrialAborted) => return self.trial_input(now, trial),
        }
        Ok(())
    }
}
