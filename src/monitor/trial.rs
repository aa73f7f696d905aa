//! Trials: an activation with a deadline that the daemon rolls back by
//! itself when a failure is attributed to it first (`Try`, `Confirm`,
//! `Abort`).
//!
//! The monitor decides; the caller does the I/O. A trial is claimed first
//! ([`Input::TrialClaimed`], so that a second `Try` is refused while the
//! first one runs its checks), started once its drop-in line is about to
//! be written ([`Input::TrialStarted`], which registers the activation),
//! and ends in one of three ways:
//! - kept: the deadline passed with fail2ban online and the jail running,
//!   or [`Input::TrialConfirmed`];
//! - rolled back: a record was attributed to the trial's activation, or
//!   the deadline found fail2ban unhealthy, or [`Input::TrialAborted`].
//!   The monitor asks for the rollback with [`Action::RollBackTrial`]
//!   and ends the trial when [`Input::RollbackFinished`] comes back.
//!
//! Either way [`Event::TrialEnded`] says so, once.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::recovery::blames;
use super::window::ActivationWindow;
use super::{Action, Activation, Cause, Event, Input, Monitor, Now, Refusal};

/// A running trial, as published (`Trial`) and remembered across a
/// restart of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// The jail on trial.
    pub jail_name: String,
    /// When it started: the time of its activation.
    pub started_at: DateTime<Utc>,
    /// When it is judged, by wall clock.
    pub deadline_at: DateTime<Utc>,
    /// The daemon's drop-in before the trial wrote its line (`None`: there
    /// was none). A rollback puts back exactly this.
    pub dropin_before: Option<String>,
}

impl Trial {
    /// The trial's activation.
    pub fn activation(&self) -> Activation {
        Activation {
            jail_name: self.jail_name.clone(),
            activated_at: self.started_at,
        }
    }

    /// How long failures are attributed to the trial's activation: its
    /// whole length, and never less than the crash window.
    pub(super) fn window(&self, crash_window: Duration) -> Duration {
        (self.deadline_at - self.started_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(crash_window)
    }
}

/// How a running trial stands.
#[derive(Debug, Clone)]
pub(super) struct Running {
    pub(super) trial: Trial,
    /// The deadline on the monotonic clock.
    pub(super) due: Instant,
    /// The deadline has passed: the next probe judges.
    pub(super) judging: bool,
    /// A probe has finished since the deadline passed.
    pub(super) probed_since_due: bool,
    /// Its rollback runs; `Some(cause)` is what `TrialEnded` will carry.
    pub(super) rolling_back: Option<u32>,
}

/// The trial inputs, dispatched from [`Monitor::handle_input`].
impl Monitor {
    pub(super) fn trial_input(&mut self, now: Now, input: Input) -> Result<(), Refusal> {
        match input {
            Input::TrialClaimed { jail } => self.claim(&jail),
            Input::TrialCancelled => {
                self.trial_claimed = false;
                // A trial that started but could not write its line or
                // reload: nothing changed in fail2ban, so its activation
                // blames nobody.
                if self
                    .trial
                    .as_ref()
                    .is_some_and(|t| t.rolling_back.is_none())
                {
                    self.spend_window();
                    self.end_trial(false, 0);
                }
                Ok(())
            }
            Input::TrialStarted {
                jail,
                timeout,
                dropin_before,
            } => self.start_trial(now, jail, timeout, dropin_before),
            Input::TrialConfirmed => {
                let t = self.trial.as_ref().ok_or(Refusal::NoTrial)?;
                if t.rolling_back.is_some() {
                    return Err(Refusal::RollbackRunning);
                }
                self.end_trial(true, 0);
                Ok(())
            }
            Input::TrialAborted => {
                let t = self.trial.as_ref().ok_or(Refusal::NoTrial)?;
                if t.rolling_back.is_some() {
                    return Err(Refusal::RollbackRunning);
                }
                self.roll_back_trial(0);
                Ok(())
            }
            _ => unreachable!("only trial inputs come here"),
        }
    }

    /// Takes the one trial slot for `jail`, while its checks run.
    fn claim(&mut self, jail: &str) -> Result<(), Refusal> {
        if self.trial.is_some() || self.trial_claimed {
            return Err(Refusal::TrialRunning);
        }
        if self.rollback_running {
            return Err(Refusal::RollbackRunning);
        }
        if !self.snapshot.online {
            return Err(Refusal::NotHealthy(format!(
                "fail2ban is offline ({}): a trial needs a healthy fail2ban to compare with",
                self.snapshot.offline_reason
            )));
        }
        if let Some(r) = self
            .snapshot
            .pending_recovery
            .as_ref()
            .filter(|r| !r.recovered())
        {
            return Err(Refusal::NotHealthy(format!(
                "a failure attributed to jail {} is not resolved yet: resolve or dismiss it first",
                r.jail_name
            )));
        }
        if self.snapshot.jails.iter().any(|j| j.name == jail) {
            return Err(Refusal::JailRunning(jail.to_owned()));
        }
        self.trial_claimed = true;
        Ok(())
    }

    fn start_trial(
        &mut self,
        now: Now,
        jail: String,
        timeout: Duration,
        dropin_before: Option<String>,
    ) -> Result<(), Refusal> {
        if self.trial.is_some() {
            return Err(Refusal::TrialRunning);
        }
        if self.rollback_running {
            return Err(Refusal::RollbackRunning);
        }
        self.trial_claimed = false;
        let trial = Trial {
            jail_name: jail.clone(),
            started_at: now.wall,
            deadline_at: now.wall + timeout,
            dropin_before,
        };
        let window = trial.window(self.timing.crash_window);
        self.register_activation(now, jail);
        if let Some(w) = self.window.as_mut() {
            w.length = window;
        }
        self.snapshot.trial = Some(trial.clone());
        self.trial = Some(Running {
            trial,
            due: now.mono + timeout,
            judging: false,
            probed_since_due: false,
            rolling_back: None,
        });
        Ok(())
    }

    /// A restored trial: its deadline kept by wall clock (one that passed
    /// while the daemon was down is due at once), and its activation
    /// still blamable for the trial's whole length.
    pub(super) fn restore_trial(&mut self, now: Now, trial: Trial) {
        let left = (trial.deadline_at - now.wall)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let since = (now.wall - trial.started_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let at = now.mono.checked_sub(since).unwrap_or(now.mono);
        let window = trial.window(self.timing.crash_window).max(since);
        let activation = trial.activation();
        match self.window.as_mut() {
            Some(w) if w.activation == activation => w.length = window,
            Some(_) => {}
            None if self.snapshot.last_activation.as_ref() == Some(&activation) => {
                self.window = Some(ActivationWindow {
                    activation,
                    opened: at,
                    jails_before: None,
                    spent: false,
                    ran_before: false,
                    length: window,
                });
            }
            None => {}
        }
        self.snapshot.trial = Some(trial.clone());
        self.trial = Some(Running {
            trial,
            due: now.mono + left,
            judging: false,
            probed_since_due: false,
            rolling_back: None,
        });
    }

    /// Whether the trial's deadline is what the caller should wake for.
    pub(super) fn trial_deadline(&self) -> Option<Instant> {
        self.trial
            .as_ref()
            .filter(|t| !t.judging && t.rolling_back.is_none())
            .map(|t| t.due)
    }

    /// A probe has finished: one that ends after the deadline judges.
    pub(super) fn trial_probed(&mut self) {
        if let Some(t) = self.trial.as_mut().filter(|t| t.judging) {
            t.probed_since_due = true;
        }
    }

    /// Called after every step: rolls the trial back once a failure is
    /// attributed to it, and judges it once its deadline has passed and a
    /// probe has answered since.
    pub(super) fn trial_step(&mut self, now: Now) {
        let gated = self.connect_gate().is_some();
        let Some(t) = self.trial.as_mut() else {
            return;
        };
        if t.rolling_back.is_some() {
            return;
        }
        let activation = t.trial.activation();
        if let Some(r) = self
            .snapshot
            .pending_recovery
            .as_ref()
            .filter(|r| blames(r, &activation))
        {
            let cause = r.cause.code();
            if r.rolled_back {
                // Rolled back before a restart of the daemon ended it.
                self.end_trial(false, cause);
            } else if !self.rollback_running {
                self.roll_back_trial(cause);
            }
            return;
        }
        if !t.judging && now.mono >= t.due {
            t.judging = true;
            t.probed_since_due = false;
            self.request_probe(now);
            return;
        }
        // Under socket activation with the service stopped the units say
        // what a probe would: nothing connects, and nothing needs to.
        let known = t.probed_since_due || gated;
        if !t.judging || !known || self.rollback_running {
            return;
        }
        // A verdict of the restart rules is still to come.
        if self.grace.is_some() || self.settle.is_some() || self.unconfirmed.is_some() {
            return;
        }
        self.judge_trial(now, &activation);
    }

    /// The deadline has passed and fail2ban's state is known: the trial
    /// is kept when healthy, else recorded (if nothing was) and rolled
    /// back.
    fn judge_trial(&mut self, now: Now, activation: &Activation) {
        let snapshot = &self.snapshot;
        if snapshot.online
            && snapshot.runs(&activation.jail_name)
            && snapshot.unresolved().is_none()
        {
            self.end_trial(true, 0);
            return;
        }
        // Unhealthy at the deadline with nothing recorded yet: recorded
        // now against the trial's own activation, then rolled back.
        let cause = if snapshot.online {
            Cause::JailNotRunning
        } else {
            Cause::WentOffline(snapshot.offline_reason)
        };
        if let Some(w) = self.window.clone().filter(|w| w.activation == *activation) {
            self.create_record(now, &w, cause.clone());
        }
        // Rolled back with the record just made, or, when another
        // activation's record stands, all the same: the trial's jail did
        // not prove healthy.
        let cause = self
            .snapshot
            .pending_recovery
            .as_ref()
            .filter(|r| blames(r, activation))
            .map_or(cause.code(), |r| r.cause.code());
        self.roll_back_trial(cause);
    }

    /// Asks for the trial's rollback; `cause` is what `TrialEnded` carries.
    fn roll_back_trial(&mut self, cause: u32) {
        let Some(t) = self.trial.as_mut() else {
            return;
        };
        t.rolling_back = Some(cause);
        let action = Action::RollBackTrial {
            activation: t.trial.activation(),
            dropin_before: t.trial.dropin_before.clone(),
        };
        self.rollback_running = true;
        // The restart the rollback causes is nobody's crash.
        self.spend_window();
        self.actions.push_back(action);
    }

    /// The trial's rollback has ended (`done`: the drop-in is restored and
    /// fail2ban answered afterwards).
    pub(super) fn trial_rollback_finished(&mut self, activation: &Activation, done: bool) {
        let Some(t) = self.trial.as_ref() else {
            return;
        };
        let Some(cause) = t.rolling_back else {
            return;
        };
        if t.trial.activation() != *activation {
            return;
        }
        if let Some(r) = self
            .snapshot
            .pending_recovery
            .as_mut()
            .filter(|r| done && blames(r, activation))
        {
            r.auto_rolled_back = cause != 0;
        }
        self.end_trial(false, cause);
    }

    fn end_trial(&mut self, kept: bool, cause: u32) {
        if let Some(t) = self.trial.take() {
            self.snapshot.trial = None;
            self.events.push_back(Event::TrialEnded {
                jail: t.trial.jail_name,
                kept,
                cause,
            });
        }
    }
}
