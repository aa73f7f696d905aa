//! The applet's pure state: what the daemon last said, what the icon,
//! tooltip and menu show, and which notifications a change calls for.
//!
//! No I/O and no clock: every step takes `now`. The owner loop in
//! `main.rs` feeds it [`Model::appeared`], [`Model::changed`],
//! [`Model::gone`] and [`Model::tick`], sends the [`Notice`]s each
//! returns, and redraws from [`Model::view`].
//!
//! One `PropertiesChanged` from the daemon is one step of its state
//! machine, so one step here: a crash that takes fail2ban offline gives
//! one crash notice, not an "offline" notice as well.
//!
//! Layout: this file holds the state and its steps; `snapshot` reads the
//! daemon's properties, `view` derives what the item shows, and `words`
//! puts codes, times and bus text into words.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use zbus::OwnedVariant;

mod snapshot;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod view;
mod words;

pub use snapshot::{Record, Snapshot, Trial};
pub use view::{Colour, Entry, View};
use words::reason_words;
pub use words::{cause_code_words, clean, span};

/// Something the user can do from the menu or a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `Rollback()`.
    Rollback,
    /// `DismissRecovery()`.
    Dismiss,
    /// `Probe()`.
    Probe,
    /// `Confirm()`: keep the trial's jail now.
    Confirm,
    /// `Abort()`: roll the trial's jail back now.
    Abort,
    /// The status text in a notification.
    ShowStatus,
    /// Ends the applet.
    Quit,
}

impl Action {
    /// The method's name, for messages.
    pub fn words(self) -> &'static str {
        match self {
            Action::Rollback => "Roll back",
            Action::Dismiss => "Dismiss",
            Action::Probe => "Probe now",
            Action::Confirm => "Keep the jail",
            Action::Abort => "Roll back the trial",
            Action::ShowStatus => "Show status",
            Action::Quit => "Quit",
        }
    }
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A record was created (or found unresolved at start), not of a
    /// running trial.
    Crash {
        /// The record.
        record: Record,
    },
    /// The record became resolved.
    Resolved {
        /// The record.
        record: Record,
    },
    /// fail2ban went offline, with no record.
    WentOffline {
        /// Why, in words.
        reason: String,
    },
    /// fail2ban came back.
    CameOnline {
        /// Its version.
        version: String,
        /// How many jails run.
        jails: u32,
    },
    /// A failure was attributed to the running trial: the daemon rolls
    /// its jail back by itself.
    TrialFailed {
        /// The record.
        record: Record,
    },
    /// A trial ended (`TrialEnded`).
    TrialEnded {
        /// The jail tried.
        jail: String,
        /// Kept (the deadline passed healthy, or confirmed), or rolled back.
        kept: bool,
        /// Rolled back after a failure: its cause (1, 2, 3); 0 otherwise.
        cause: u32,
        /// The trial's record, when it was rolled back after a failure.
        record: Option<Record>,
        /// fail2ban is online.
        online: bool,
        /// fail2ban's state in words.
        state: String,
    },
}

/// The applet's state.
#[derive(Debug, Clone)]
pub struct Model {
    /// The daemon's properties, `None` while it is not on the bus.
    daemon: Option<Snapshot>,
    /// Why the bus itself cannot be reached, if so.
    unreachable: Option<String>,
    /// The last probed `Online`, kept across the daemon's restarts so
    /// that its "not probed yet" start announces nothing.
    known_online: Option<bool>,
    /// When fail2ban last came back online.
    came_back_at: Option<DateTime<Utc>>,
    /// How long fail2ban counts as just back.
    settle: Duration,
    /// The record whose crash was announced.
    announced_crash: Option<(String, u64)>,
    /// The record whose resolution was announced.
    announced_resolved: Option<(String, u64)>,
    /// The action running now, if any.
    busy: Option<Action>,
    /// The record announced as a failure of a trial: its resolution is
    /// the trial's end notice, not a notice of its own.
    trial_record: Option<(String, u64)>,
    /// The trial whose `Abort` the daemon accepted: it is being rolled
    /// back until it ends.
    aborting: Option<(String, u64)>,
}

impl Model {
    /// A model that has heard nothing yet; fail2ban counts as just back
    /// for `settle` after it comes back online.
    pub fn new(settle: Duration) -> Self {
        Model {
            daemon: None,
            unreachable: None,
            known_online: None,
            came_back_at: None,
            settle,
            announced_crash: None,
            announced_resolved: None,
            busy: None,
            trial_record: None,
            aborting: None,
        }
    }

    /// The daemon's current snapshot, if it is on the bus.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.daemon.as_ref()
    }

    /// The current record, if the daemon is on the bus and has one.
    pub fn record(&self) -> Option<&Record> {
        self.daemon.as_ref().and_then(|s| s.record.as_ref())
    }

    /// The daemon appeared on the bus (or was there at start): its `GetAll`.
    pub fn appeared(
        &mut self,
        props: &HashMap<String, OwnedVariant>,
        now: DateTime<Utc>,
    ) -> Vec<Notice> {
        self.unreachable = None;
        let mut s = Snapshot::default();
        s.apply(props);
        self.step(s, now)
    }

    /// One `PropertiesChanged` of the daemon.
    pub fn changed(
        &mut self,
        props: &HashMap<String, OwnedVariant>,
        now: DateTime<Utc>,
    ) -> Vec<Notice> {
        let Some(mut s) = self.daemon.clone() else {
            // A change from a daemon not seen appearing: the GetAll that
            // follows its appearance brings the whole state.
            return Vec::new();
        };
        s.apply(props);
        self.step(s, now)
    }

    /// The daemon left the bus.
    pub fn gone(&mut self) {
        self.daemon = None;
        self.busy = None;
        self.aborting = None;
    }

    /// The bus itself cannot be reached.
    pub fn unreachable(&mut self, why: &str) {
        self.gone();
        self.unreachable = Some(clean(why));
    }

    /// An action started or ended.
    pub fn set_busy(&mut self, action: Option<Action>) {
        self.busy = action;
    }

    /// An action ended; `ok`: the daemon accepted it.
    pub fn finished(&mut self, action: Action, ok: bool) {
        self.busy = None;
        // `Abort` answers once the rollback is asked for; the trial ends
        // when it is done.
        if action == Action::Abort && ok {
            self.aborting = self.trial().map(Trial::key);
        }
    }

    /// The running trial, if the daemon is on the bus and has one.
    pub fn trial(&self) -> Option<&Trial> {
        self.daemon.as_ref().and_then(|s| s.trial.as_ref())
    }

    /// The record, when `Rollback` may be asked for it now: the daemon
    /// would act on it, and no trial runs (the daemon rolls a trial's
    /// failure back by itself, and refuses `Rollback` during a trial).
    pub fn offers_rollback(&self) -> Option<&Record> {
        self.record()
            .filter(|r| r.may_roll_back() && self.trial().is_none())
    }

    /// Whether the running trial is being rolled back: a failure was
    /// attributed to it, or its `Abort` was accepted.
    fn trial_rolling_back(&self) -> bool {
        self.daemon
            .as_ref()
            .is_some_and(|s| s.trial_rolling_back(self.aborting.as_ref()))
    }

    /// The daemon's `TrialEnded`: the notice that ends the trial's story.
    pub fn trial_ended(&mut self, jail: &str, kept: bool, cause: u32) -> Vec<Notice> {
        let jail = clean(jail);
        self.aborting = None;
        let record = self
            .record()
            .filter(|r| {
                !kept
                    && cause != 0
                    && r.jail == jail
                    && (r.auto_rolled_back || self.trial_record.as_ref() == Some(&r.key()))
            })
            .cloned();
        let online = self.daemon.as_ref().is_some_and(|s| s.online);
        // A rollback waits for fail2ban's jails to settle, so their count
        // is fresh; a `Confirm` ends the trial before the next probe.
        vec![Notice::TrialEnded {
            jail,
            kept,
            cause,
            record,
            online,
            state: self.state_words(!kept),
        }]
    }

    /// fail2ban's state in a sentence, for notices; `count`: with the
    /// number of jails.
    fn state_words(&self, count: bool) -> String {
        match &self.daemon {
            None => "fail2ban-healthd is not on the bus".into(),
            Some(s) if s.online && !count => format!("fail2ban {} is online", s.version),
            Some(s) if s.online => format!(
                "fail2ban {} is online with {} {}",
                s.version,
                s.active_jails,
                if s.active_jails == 1 { "jail" } else { "jails" }
            ),
            Some(s) if !s.probed() => "fail2ban has not been probed yet".into(),
            Some(s) => format!("fail2ban is offline: {}", reason_words(s.offline_reason)),
        }
    }

    /// The action running now.
    pub fn busy(&self) -> Option<Action> {
        self.busy
    }

    /// When the view changes by itself (the end of "just back"), if ever.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let back = self.came_back_at?;
        let end = back + chrono::Duration::from_std(self.settle).ok()?;
        (end > now).then_some(end)
    }

    /// Time passed: nothing to announce, the view may change.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        if self.next_change(now).is_none() {
            self.came_back_at = None;
        }
    }

    fn step(&mut self, new: Snapshot, now: DateTime<Utc>) -> Vec<Notice> {
        let mut notices = Vec::new();
        let mut crash = false;
        let mut resolved = false;
        // fail2ban going down and back while the daemon rolls a trial back
        // is part of the trial's story: its end notice gives the state.
        let quiet = self.trial_rolling_back() || new.trial_rolling_back(self.aborting.as_ref());
        if self.aborting.as_ref() != new.trial.as_ref().map(Trial::key).as_ref() {
            self.aborting = None;
        }
        if let Some(r) = &new.record {
            // The daemon rolls a trial's failure back by itself, and the
            // trial's end notice tells how it ended.
            let of_trial = r.auto_rolled_back || new.trial.as_ref().is_some_and(|t| t.owns(r));
            if !r.recovered && self.announced_crash.as_ref() != Some(&r.key()) {
                self.announced_crash = Some(r.key());
                if of_trial {
                    self.trial_record = Some(r.key());
                    notices.push(Notice::TrialFailed { record: r.clone() });
                } else {
                    notices.push(Notice::Crash { record: r.clone() });
                }
                crash = true;
            } else if r.recovered
                && self.announced_crash.as_ref() == Some(&r.key())
                && self.announced_resolved.as_ref() != Some(&r.key())
            {
                self.announced_resolved = Some(r.key());
                if !of_trial && self.trial_record.as_ref() != Some(&r.key()) {
                    notices.push(Notice::Resolved { record: r.clone() });
                }
                resolved = true;
            }
        }
        if new.probed() {
            let was = self.known_online.replace(new.online);
            match (was, new.online) {
                (Some(true), false) => {
                    self.came_back_at = None;
                    if !crash && !quiet {
                        notices.push(Notice::WentOffline {
                            reason: reason_words(new.offline_reason).into(),
                        });
                    }
                }
                (Some(false), true) => {
                    self.came_back_at = Some(now);
                    // A crash record that fail2ban's return resolves says
                    // so itself, in the same step or the next.
                    let resolves = new
                        .record
                        .as_ref()
                        .is_some_and(|r| r.cause == 1 && !r.recovered);
                    if !resolved && !resolves && !quiet {
                        notices.push(Notice::CameOnline {
                            version: new.version.clone(),
                            jails: new.active_jails,
                        });
                    }
                }
                _ => {}
            }
        }
        self.daemon = Some(new);
        notices
    }
}
