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

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use zbus::{OwnedVariant, Variant};

use fail2ban_healthd::health::OfflineReason;

/// The longest text from the bus shown, in bytes.
const MAX_TEXT: usize = 256;
/// At most this many names in one line of suspects or vanished jails.
const MAX_NAMES: usize = 8;
/// At most this many jails in the status text.
const MAX_JAILS: usize = 30;

/// Text from the bus as shown: control and invisible characters escaped,
/// capped.
pub fn clean(s: &str) -> String {
    fail2ban_healthd::text::clean(s, MAX_TEXT).into_owned()
}

/// The recovery record, as `PendingRecovery` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The jail the failure is attributed to.
    pub jail: String,
    /// When that jail was activated (µs).
    pub activated_at: u64,
    /// When the failure was detected (µs); with the jail, the record's identity.
    pub detected_at: u64,
    /// The failure has cleared since.
    pub recovered: bool,
    /// When (µs), 0 until then.
    pub recovered_at: u64,
    /// 1 offline, 2 the jail is not running, 3 other jails vanished.
    pub cause: u32,
    /// For cause 1: why offline.
    pub offline_reason: u32,
    /// Every activation still inside its window, newest first.
    pub suspects: Vec<String>,
    /// Cause 3: the jails that are gone.
    pub vanished: Vec<String>,
    /// How fail2ban's unit ended, under systemd.
    pub unit_result: Option<String>,
    /// Its exit status.
    pub exit_status: Option<i32>,
    /// A rollback disabled the jail.
    pub rolled_back: bool,
    /// The jail ran before its activation: the daemon will not roll it back.
    pub ran_before: bool,
    /// The daemon rolled the jail back by itself, ending a trial.
    pub auto_rolled_back: bool,
}

impl Record {
    /// The record from its `a{sv}`; `None` for `{}` or one without a jail.
    pub fn from_dict(d: &HashMap<String, OwnedVariant>) -> Option<Record> {
        let jail: String = text(d, "JailName")?;
        Some(Record {
            jail: clean(&jail),
            activated_at: num(d, "ActivatedAt"),
            detected_at: num(d, "DetectedAt"),
            recovered: flag(d, "Recovered"),
            recovered_at: num(d, "RecoveredAt"),
            cause: num::<u32>(d, "Cause"),
            offline_reason: num::<u32>(d, "OfflineReason"),
            suspects: names(d, "SuspectJails"),
            vanished: names(d, "VanishedJails"),
            unit_result: text(d, "UnitResult").map(|s| clean(&s)),
            exit_status: d.get("ExitStatus").and_then(|v| i32::try_from(v).ok()),
            rolled_back: flag(d, "RolledBack"),
            ran_before: flag(d, "RanBefore"),
            auto_rolled_back: flag(d, "AutoRolledBack"),
        })
    }

    /// The record's identity: a new failure is a new record.
    pub fn key(&self) -> (String, u64) {
        (self.jail.clone(), self.detected_at)
    }

    /// `Rollback` would act on it: not done already, and the jail is new.
    pub fn may_roll_back(&self) -> bool {
        !self.rolled_back && !self.ran_before
    }

    /// The failure in words, without the jail.
    pub fn cause_words(&self) -> String {
        match self.cause {
            1 => {
                let mut s = format!(
                    "fail2ban went offline ({})",
                    reason_words(self.offline_reason)
                );
                if let Some(unit) = &self.unit_result {
                    s.push_str(&format!("; its unit ended: {unit}"));
                    if let Some(status) = self.exit_status {
                        s.push_str(&format!(", status {status}"));
                    }
                }
                s
            }
            2 => "the jail is not running while fail2ban is".into(),
            3 => format!(
                "jails that ran before disappeared: {}",
                list(&self.vanished)
            ),
            other => format!("unknown cause {other}"),
        }
    }
}

/// A failure's cause code in words, without the jail, for when the record
/// is not at hand.
pub fn cause_code_words(cause: u32) -> String {
    match cause {
        1 => "fail2ban went offline".into(),
        2 => "the jail did not run while fail2ban did".into(),
        3 => "jails that ran before disappeared".into(),
        other => format!("unknown cause {other}"),
    }
}

/// The running trial, as `Trial` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trial {
    /// The jail on trial.
    pub jail: String,
    /// When it started: the time of its activation (µs).
    pub started_at: u64,
    /// When the daemon judges it (µs).
    pub deadline_at: u64,
}

impl Trial {
    /// The trial from its `a{sv}`; `None` for `{}` or one without a jail.
    pub fn from_dict(d: &HashMap<String, OwnedVariant>) -> Option<Trial> {
        let jail = clean(&text(d, "JailName")?);
        if jail.is_empty() {
            return None;
        }
        Some(Trial {
            jail,
            started_at: num(d, "StartedAt"),
            deadline_at: num(d, "DeadlineAt"),
        })
    }

    /// The trial's identity.
    pub fn key(&self) -> (String, u64) {
        (self.jail.clone(), self.started_at)
    }

    /// Whether `r` is a failure attributed to this trial's activation: the
    /// daemon rolls it back by itself.
    pub fn owns(&self, r: &Record) -> bool {
        self.started_at != 0 && r.jail == self.jail && r.activated_at == self.started_at
    }
}

/// What the daemon's properties say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The latest probe got a valid answer.
    pub online: bool,
    /// Why not.
    pub offline_reason: u32,
    /// fail2ban's version.
    pub version: String,
    /// How many jails run.
    pub active_jails: u32,
    /// Per jail: name, currently failed, total failed, currently banned, total banned.
    pub jails: Vec<(String, u32, u32, u32, u32)>,
    /// When the latest probe finished (µs).
    pub last_probe: u64,
    /// The recovery record, if any.
    pub record: Option<Record>,
    /// The running trial, if any.
    pub trial: Option<Trial>,
}

impl Snapshot {
    /// Applies properties, from `GetAll` or one `PropertiesChanged`.
    /// Unknown names and values of the wrong type are ignored.
    pub fn apply(&mut self, props: &HashMap<String, OwnedVariant>) {
        for (name, value) in props {
            let v: &Variant<'_> = value;
            match name.as_str() {
                "Online" => {
                    if let Ok(b) = bool::try_from(v) {
                        self.online = b;
                    }
                }
                "OfflineReason" => {
                    if let Ok(r) = u32::try_from(v) {
                        self.offline_reason = r;
                    }
                }
                "Version" => {
                    if let Ok(s) = <&str>::try_from(v) {
                        self.version = clean(s);
                    }
                }
                "ActiveJails" => {
                    if let Ok(n) = u32::try_from(v) {
                        self.active_jails = n;
                    }
                }
                "Jails" => {
                    if let Ok(list) = value.try_clone().map_err(|_| ()).and_then(|v| {
                        Vec::<(String, u32, u32, u32, u32)>::try_from(v).map_err(|_| ())
                    }) {
                        self.jails = list
                            .into_iter()
                            .map(|(n, a, b, c, d)| (clean(&n), a, b, c, d))
                            .collect();
                    }
                }
                "LastProbeTimestamp" => {
                    if let Ok(t) = u64::try_from(v) {
                        self.last_probe = t;
                    }
                }
                "PendingRecovery" => {
                    if let Ok(d) = value
                        .try_clone()
                        .map_err(|_| ())
                        .and_then(|v| HashMap::<String, OwnedVariant>::try_from(v).map_err(|_| ()))
                    {
                        self.record = Record::from_dict(&d);
                    }
                }
                "Trial" => {
                    if let Ok(d) = value
                        .try_clone()
                        .map_err(|_| ())
                        .and_then(|v| HashMap::<String, OwnedVariant>::try_from(v).map_err(|_| ()))
                    {
                        self.trial = Trial::from_dict(&d);
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the daemon rolls the running trial back: a failure was
    /// attributed to it, or `aborting` is its `Abort`.
    fn trial_rolling_back(&self, aborting: Option<&(String, u64)>) -> bool {
        self.trial.as_ref().is_some_and(|t| {
            aborting == Some(&t.key())
                || self
                    .record
                    .as_ref()
                    .is_some_and(|r| t.owns(r) && !r.rolled_back)
        })
    }

    /// Whether the daemon has probed at all (before that, `Online` means
    /// nothing).
    pub fn probed(&self) -> bool {
        self.online || self.offline_reason != OfflineReason::NotProbedYet.code()
    }
}

fn num<T: Default + for<'a> TryFrom<&'a Variant<'a>>>(
    d: &HashMap<String, OwnedVariant>,
    key: &str,
) -> T {
    d.get(key)
        .and_then(|v| T::try_from(v).ok())
        .unwrap_or_default()
}

fn flag(d: &HashMap<String, OwnedVariant>, key: &str) -> bool {
    num::<bool>(d, key)
}

fn text(d: &HashMap<String, OwnedVariant>, key: &str) -> Option<String> {
    d.get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .map(str::to_owned)
}

fn names(d: &HashMap<String, OwnedVariant>, key: &str) -> Vec<String> {
    d.get(key)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| Vec::<String>::try_from(v).ok())
        .unwrap_or_default()
        .iter()
        .map(|s| clean(s))
        .collect()
}

/// A list of names, at most [`MAX_NAMES`] of them.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let mut s = names
        .iter()
        .take(MAX_NAMES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_NAMES {
        s.push_str(&format!(" and {} more", names.len() - MAX_NAMES));
    }
    s
}

/// An `OfflineReason` in words.
pub fn reason_words(code: u32) -> &'static str {
    match OfflineReason::from_code(code) {
        Some(OfflineReason::None) => "online",
        Some(OfflineReason::NotProbedYet) => "not probed yet",
        Some(OfflineReason::SocketMissing) => "its socket is missing",
        Some(OfflineReason::ConnectionRefused) => "connection refused",
        Some(OfflineReason::PermissionDenied) => "permission denied on its socket",
        Some(OfflineReason::Timeout) => "it did not answer in time",
        Some(OfflineReason::ProtocolError) => "it answered something unreadable",
        Some(OfflineReason::ShuttingDown) => "it is shutting down",
        Some(OfflineReason::ConnectionLost) => "it dropped the connection",
        Some(OfflineReason::Inactive) => "stopped; its socket unit listens",
        Some(OfflineReason::UnitFailed) => "its service failed",
        Some(OfflineReason::SocketFailed) => "its socket unit failed",
        None => "reason unknown",
    }
}

/// The icon's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    /// Online, nothing pending.
    Green,
    /// A resolved record still shown, or fail2ban just came back.
    Amber,
    /// Offline, or an unresolved record.
    Red,
    /// The daemon is not on the bus (or has not probed yet).
    Grey,
}

impl Colour {
    /// The state in one word, as in the icon-theme names.
    pub fn word(self) -> &'static str {
        match self {
            Colour::Green => "ok",
            Colour::Amber => "warning",
            Colour::Red => "error",
            Colour::Grey => "unknown",
        }
    }
}

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

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A line of text, not clickable.
    Text(String),
    /// A separator.
    Separator,
    /// A clickable action.
    Item {
        /// What it says.
        label: String,
        /// What it does.
        action: Action,
        /// Whether it can be clicked now.
        enabled: bool,
    },
}

/// Everything the item shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The icon's colour.
    pub colour: Colour,
    /// `NeedsAttention` (red) or `Active`.
    pub attention: bool,
    /// The tooltip's title: the state in a few words.
    pub title: String,
    /// The tooltip's lines.
    pub lines: Vec<String>,
    /// The menu.
    pub menu: Vec<Entry>,
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

    /// The icon's colour now.
    pub fn colour(&self, now: DateTime<Utc>) -> Colour {
        let Some(s) = &self.daemon else {
            return Colour::Grey;
        };
        if !s.probed() {
            return Colour::Grey;
        }
        match &s.record {
            _ if !s.online => Colour::Red,
            Some(r) if !r.recovered => Colour::Red,
            Some(_) => Colour::Amber,
            None if s.trial.is_some() || self.next_change(now).is_some() => Colour::Amber,
            None => Colour::Green,
        }
    }

    /// What the item shows now.
    pub fn view(&self, now: DateTime<Utc>) -> View {
        let colour = self.colour(now);
        let mut lines = Vec::new();
        let mut title;
        match (&self.daemon, &self.unreachable) {
            (None, Some(why)) => {
                title = "fail2ban-healthd: the bus cannot be reached".to_string();
                lines.push(format!("cannot reach the bus: {why}; retrying"));
            }
            (None, None) => {
                title = "fail2ban-healthd is not running".to_string();
                lines.push(
                    "fail2ban-healthd is not on the bus; this applet reconnects when it starts"
                        .into(),
                );
            }
            (Some(s), _) if !s.probed() => {
                title = "fail2ban: not probed yet".to_string();
                lines.push("fail2ban-healthd has started and not probed fail2ban yet".into());
            }
            (Some(s), _) => {
                let probed = if s.last_probe == 0 {
                    String::new()
                } else {
                    format!(", probed {}", ago(s.last_probe, now))
                };
                if s.online {
                    title = format!("fail2ban {} online", s.version);
                    lines.push(format!(
                        "fail2ban {} online: {} {}{probed}",
                        s.version,
                        s.active_jails,
                        if s.active_jails == 1 { "jail" } else { "jails" }
                    ));
                    if self.next_change(now).is_some() {
                        lines.push("fail2ban has just come back".into());
                    }
                } else {
                    title = "fail2ban offline".to_string();
                    lines.push(format!(
                        "fail2ban offline: {}{probed}",
                        reason_words(s.offline_reason)
                    ));
                }
                if let Some(t) = &s.trial {
                    if s.online {
                        title = format!("{title}, trying {}", t.jail);
                    }
                    lines.push(trial_line(t, s.record.as_ref(), now));
                }
                if let Some(r) = &s.record {
                    lines.extend(record_lines(r, now));
                }
            }
        }
        let mut menu: Vec<Entry> = lines.iter().cloned().map(Entry::Text).collect();
        menu.push(Entry::Separator);
        let present = self.daemon.is_some();
        let idle = self.busy.is_none();
        if let Some(t) = self.trial() {
            let rolling_back = self.trial_rolling_back();
            let keep = if self.busy == Some(Action::Confirm) {
                format!("Keeping {}…", t.jail)
            } else {
                format!("Keep {}", t.jail)
            };
            let abort = if self.busy == Some(Action::Abort) || rolling_back {
                format!("Rolling back {}…", t.jail)
            } else {
                format!("Roll back {} now", t.jail)
            };
            for (label, action) in [(keep, Action::Confirm), (abort, Action::Abort)] {
                menu.push(Entry::Item {
                    label,
                    action,
                    enabled: idle && !rolling_back,
                });
            }
        }
        if let Some(r) = self.offers_rollback() {
            let label = if self.busy == Some(Action::Rollback) {
                format!("Rolling back {}…", r.jail)
            } else {
                format!("Roll back {}", r.jail)
            };
            menu.push(Entry::Item {
                label,
                action: Action::Rollback,
                enabled: idle,
            });
        }
        // The running trial's record is the daemon's to roll back; it
        // refuses a dismissal meanwhile.
        let dismissable = self
            .record()
            .is_some_and(|r| !self.trial().is_some_and(|t| t.owns(r)));
        menu.push(Entry::Item {
            label: "Dismiss".into(),
            action: Action::Dismiss,
            enabled: idle && dismissable,
        });
        menu.push(Entry::Item {
            label: "Probe now".into(),
            action: Action::Probe,
            enabled: present && self.busy != Some(Action::Probe),
        });
        menu.push(Entry::Item {
            label: "Show status".into(),
            action: Action::ShowStatus,
            enabled: true,
        });
        menu.push(Entry::Separator);
        menu.push(Entry::Item {
            label: "Quit".into(),
            action: Action::Quit,
            enabled: true,
        });
        View {
            colour,
            attention: colour == Colour::Red,
            title,
            lines,
            menu,
        }
    }

    /// The status text: the view's lines, then every jail's counters.
    pub fn status_text(&self, now: DateTime<Utc>) -> String {
        let mut out = self.view(now).lines.join("\n");
        if let Some(s) = self.daemon.as_ref().filter(|s| s.online) {
            for (name, failed, _, banned, total_banned) in s.jails.iter().take(MAX_JAILS) {
                out.push_str(&format!(
                    "\n{name}: {banned} banned ({total_banned} in all), {failed} failing"
                ));
            }
            if s.jails.len() > MAX_JAILS {
                out.push_str(&format!("\nand {} more jails", s.jails.len() - MAX_JAILS));
            }
        }
        out
    }
}

/// The running trial in one line.
pub fn trial_line(t: &Trial, record: Option<&Record>, now: DateTime<Utc>) -> String {
    if record.is_some_and(|r| t.owns(r) && !r.rolled_back) {
        return format!(
            "Trial of {} failed: fail2ban-healthd rolls it back automatically",
            t.jail
        );
    }
    let now_us = u64::try_from(now.timestamp_micros()).unwrap_or(0);
    if t.deadline_at != 0 && t.deadline_at <= now_us {
        return format!(
            "Trying {}: its deadline {} has passed, the daemon is judging it",
            t.jail,
            clock(t.deadline_at, now)
        );
    }
    format!("Trying {} until {}", t.jail, clock(t.deadline_at, now))
}

/// A time (µs) as local wall-clock time: `HH:MM` within 12 hours of
/// `now`, with the date beyond.
pub fn clock(usec: u64, now: DateTime<Utc>) -> String {
    let Some(t) = i64::try_from(usec)
        .ok()
        .filter(|&u| u > 0)
        .and_then(DateTime::<Utc>::from_timestamp_micros)
    else {
        return "an unknown time".into();
    };
    let local = t.with_timezone(&Local);
    if (t - now).num_hours().abs() < 12 {
        local.format("%H:%M").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// The record in lines: what, when, suspects, how it ended.
pub fn record_lines(r: &Record, now: DateTime<Utc>) -> Vec<String> {
    let mut lines = vec![
        format!("Crash attributed to jail {}: {}", r.jail, r.cause_words()),
        format!(
            "detected {}, {} after its activation",
            when(r.detected_at, now),
            span(r.detected_at.saturating_sub(r.activated_at))
        ),
        format!("suspects: {}", list(&r.suspects)),
    ];
    let rolled = if r.auto_rolled_back {
        "rolled back automatically (trial)"
    } else {
        "rolled back"
    };
    let state = match (r.recovered, r.rolled_back) {
        (true, true) => format!("{rolled}; resolved {}", when(r.recovered_at, now)),
        (true, false) => format!("resolved {}", when(r.recovered_at, now)),
        (false, true) => format!("{rolled}; not resolved yet"),
        (false, false) => "not resolved".to_string(),
    };
    lines.push(state);
    if r.ran_before && !r.rolled_back {
        lines.push(format!(
            "{} ran before its activation: it is not rolled back",
            r.jail
        ));
    }
    lines
}

/// A time (µs) as local wall-clock time and how long ago.
pub fn when(usec: u64, now: DateTime<Utc>) -> String {
    let Some(t) = i64::try_from(usec)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
    else {
        return "at an unknown time".into();
    };
    let local = t.with_timezone(&Local);
    let clock = if (now - t).num_hours() < 20 {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    };
    format!("at {clock} ({})", ago(usec, now))
}

/// How long ago a time (µs) was, in words.
pub fn ago(usec: u64, now: DateTime<Utc>) -> String {
    let now_us = u64::try_from(now.timestamp_micros()).unwrap_or(0);
    if usec > now_us {
        return "just now".into();
    }
    format!("{} ago", span(now_us - usec))
}

/// A duration (µs) in words, rounded down.
pub fn span(usec: u64) -> String {
    let s = usec / 1_000_000;
    match s {
        0 => "under a second".into(),
        1..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn us(s: i64) -> u64 {
        u64::try_from(t(s).timestamp_micros()).unwrap()
    }

    fn v<T: Into<Variant<'static>>>(x: T) -> OwnedVariant {
        OwnedVariant::try_from(x.into()).unwrap()
    }

    fn online(jails: u32) -> HashMap<String, OwnedVariant> {
        HashMap::from([
            ("Online".to_string(), v(true)),
            ("OfflineReason".to_string(), v(0u32)),
            ("Version".to_string(), v("1.0.2")),
            ("ActiveJails".to_string(), v(jails)),
            ("LastProbeTimestamp".to_string(), v(us(0))),
            (
                "PendingRecovery".to_string(),
                v(HashMap::<String, Variant<'static>>::new()),
            ),
        ])
    }

    fn offline(reason: u32) -> HashMap<String, OwnedVariant> {
        HashMap::from([
            ("Online".to_string(), v(false)),
            ("OfflineReason".to_string(), v(reason)),
            ("Version".to_string(), v("")),
            ("ActiveJails".to_string(), v(0u32)),
        ])
    }

    fn record(
        jail: &str,
        detected: i64,
        recovered: bool,
        extra: &[(&str, Variant<'static>)],
    ) -> HashMap<String, OwnedVariant> {
        let mut d: HashMap<String, Variant<'static>> = HashMap::from([
            ("JailName".to_string(), Variant::from(jail.to_string())),
            ("ActivatedAt".to_string(), Variant::from(us(detected - 2))),
            ("DetectedAt".to_string(), Variant::from(us(detected))),
            ("Recovered".to_string(), Variant::from(recovered)),
            (
                "RecoveredAt".to_string(),
                Variant::from(if recovered { us(detected + 5) } else { 0 }),
            ),
            ("Cause".to_string(), Variant::from(1u32)),
            ("OfflineReason".to_string(), Variant::from(3u32)),
            (
                "SuspectJails".to_string(),
                Variant::from(vec![jail.to_string()]),
            ),
            ("RolledBack".to_string(), Variant::from(false)),
            ("RanBefore".to_string(), Variant::from(false)),
        ]);
        for (k, x) in extra {
            d.insert((*k).to_string(), x.try_clone().unwrap());
        }
        HashMap::from([("PendingRecovery".to_string(), v(d))])
    }

    fn merged(
        a: HashMap<String, OwnedVariant>,
        b: HashMap<String, OwnedVariant>,
    ) -> HashMap<String, OwnedVariant> {
        a.into_iter().chain(b).collect()
    }

    fn actions(view: &View) -> Vec<(String, bool)> {
        view.menu
            .iter()
            .filter_map(|e| match e {
                Entry::Item { label, enabled, .. } => Some((label.clone(), *enabled)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn online_without_a_record_is_green_and_offers_no_rollback() {
        let mut m = Model::new(Duration::from_secs(60));
        assert!(m.appeared(&online(3), t(1)).is_empty());
        let view = m.view(t(5));
        assert_eq!(view.colour, Colour::Green);
        assert!(!view.attention);
        assert_eq!(
            view.lines[0],
            "fail2ban 1.0.2 online: 3 jails, probed 5 s ago"
        );
        assert_eq!(
            actions(&view),
            [
                ("Dismiss".to_string(), false),
                ("Probe now".to_string(), true),
                ("Show status".to_string(), true),
                ("Quit".to_string(), true)
            ]
        );
        assert_eq!(m.next_change(t(5)), None);
    }

    #[test]
    fn a_crash_is_one_notice_red_and_offers_the_rollback() {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&online(3), t(0));
        let step = merged(offline(3), record("beta", 10, false, &[]));
        let notices = m.changed(&step, t(10));
        assert_eq!(notices.len(), 1, "{notices:?}");
        let Notice::Crash { record: r } = &notices[0] else {
            panic!("{notices:?}")
        };
        assert_eq!(r.jail, "beta");
        let view = m.view(t(11));
        assert_eq!(view.colour, Colour::Red);
        assert!(view.attention);
        assert!(
            view.lines[1].contains("jail beta: fail2ban went offline (connection refused)"),
            "{:?}",
            view.lines
        );
        assert_eq!(actions(&view)[0], ("Roll back beta".to_string(), true));
        // The same record again announces nothing.
        assert!(m.changed(&record("beta", 10, false, &[]), t(12)).is_empty());
    }

    #[test]
    fn a_restart_of_the_daemon_announces_nothing() {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&online(3), t(0));
        m.gone();
        assert_eq!(m.colour(t(1)), Colour::Grey);
        assert!(m.view(t(1)).lines[0].contains("not on the bus"));
        // Back, not probed yet, then probed online: no offline/online notice.
        assert!(m.appeared(&offline(1), t(2)).is_empty());
        assert_eq!(m.colour(t(2)), Colour::Grey);
        assert!(m.changed(&online(3), t(3)).is_empty());
        assert_eq!(m.colour(t(3)), Colour::Green);
    }

    #[test]
    fn offline_and_back_are_one_notice_each_and_back_is_amber_for_a_while() {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&online(3), t(0));
        assert_eq!(
            m.changed(&offline(2), t(1)),
            [Notice::WentOffline {
                reason: "its socket is missing".into()
            }]
        );
        // Another change while offline announces nothing more.
        assert!(m.changed(&offline(3), t(2)).is_empty());
        assert_eq!(m.colour(t(2)), Colour::Red);
        assert_eq!(
            m.changed(&online(2), t(3)),
            [Notice::CameOnline {
                version: "1.0.2".into(),
                jails: 2
            }]
        );
        assert_eq!(m.colour(t(4)), Colour::Amber);
        assert_eq!(m.next_change(t(4)), Some(t(63)));
        m.tick(t(63));
        assert_eq!(m.colour(t(63)), Colour::Green);
        assert_eq!(m.next_change(t(63)), None);
    }

    #[test]
    fn resolution_is_announced_once_and_leaves_amber_until_dismissed() {
        let mut m = Model::new(Duration::from_secs(0));
        m.appeared(&online(3), t(0));
        m.changed(&merged(offline(3), record("beta", 10, false, &[])), t(10));
        let notices = m.changed(&merged(online(2), record("beta", 10, true, &[])), t(15));
        assert!(
            matches!(&notices[..], [Notice::Resolved { record }] if record.jail == "beta"),
            "{notices:?}"
        );
        assert!(m.changed(&record("beta", 10, true, &[]), t(16)).is_empty());
        assert_eq!(m.colour(t(16)), Colour::Amber);
        // Dismissed: green.
        let empty = HashMap::from([(
            "PendingRecovery".to_string(),
            v(HashMap::<String, Variant<'static>>::new()),
        )]);
        assert!(m.changed(&empty, t(17)).is_empty());
        assert_eq!(m.colour(t(17)), Colour::Green);
    }

    #[test]
    fn an_unresolved_record_found_at_start_is_announced_a_resolved_one_is_not() {
        let mut m = Model::new(Duration::from_secs(60));
        let n = m.appeared(&merged(offline(3), record("beta", 10, false, &[])), t(20));
        assert!(matches!(&n[..], [Notice::Crash { .. }]), "{n:?}");
        let mut m = Model::new(Duration::from_secs(60));
        assert!(
            m.appeared(&merged(online(3), record("beta", 10, true, &[])), t(20))
                .is_empty()
        );
        assert_eq!(m.colour(t(20)), Colour::Amber);
    }

    #[test]
    fn no_rollback_for_a_jail_that_ran_before_or_one_rolled_back() {
        for key in ["RanBefore", "RolledBack"] {
            let mut m = Model::new(Duration::from_secs(60));
            m.appeared(
                &merged(
                    offline(3),
                    record("alpha", 10, false, &[(key, Variant::from(true))]),
                ),
                t(10),
            );
            let view = m.view(t(11));
            assert!(
                !actions(&view)
                    .iter()
                    .any(|(l, _)| l.starts_with("Roll back")),
                "{key}: {view:?}"
            );
            assert_eq!(actions(&view)[0], ("Dismiss".to_string(), true));
        }
    }

    #[test]
    fn a_running_rollback_disables_the_actions_that_exclude_it() {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&merged(offline(3), record("beta", 10, false, &[])), t(10));
        m.set_busy(Some(Action::Rollback));
        let a = actions(&m.view(t(11)));
        assert_eq!(a[0], ("Rolling back beta…".to_string(), false));
        assert_eq!(a[1], ("Dismiss".to_string(), false));
        m.gone();
        assert_eq!(m.busy(), None);
    }

    #[test]
    fn the_record_in_words_names_unit_suspects_and_vanished_jails() {
        let mut m = Model::new(Duration::from_secs(60));
        let extra = [
            ("UnitResult", Variant::from("exit-code".to_string())),
            ("ExitStatus", Variant::from(255i32)),
            (
                "SuspectJails",
                Variant::from(vec!["beta".to_string(), "gamma".to_string()]),
            ),
        ];
        m.appeared(
            &merged(offline(10), record("beta", 10, false, &extra)),
            t(10),
        );
        let lines = m.view(t(70)).lines;
        assert!(
            lines[1].contains("its unit ended: exit-code, status 255"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("2 s after its activation") && lines[2].contains("(60 s ago)"),
            "{lines:?}"
        );
        assert_eq!(lines[3], "suspects: beta, gamma");
        let cause3 = [
            ("Cause", Variant::from(3u32)),
            (
                "VanishedJails",
                Variant::from(vec!["alpha".to_string(); 10]),
            ),
        ];
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(
            &merged(online(1), record("beta", 10, false, &cause3)),
            t(10),
        );
        let lines = m.view(t(10)).lines;
        assert!(
            lines[1].ends_with("alpha, alpha, alpha, alpha, alpha, alpha, alpha, alpha and 2 more"),
            "{lines:?}"
        );
        assert_eq!(m.colour(t(10)), Colour::Red);
    }

    #[test]
    fn hostile_text_is_cleaned_and_wrong_types_are_ignored() {
        let mut m = Model::new(Duration::from_secs(60));
        let mut props = online(1);
        props.insert("Version".into(), v("1.0\u{202e}\n2"));
        props.insert("ActiveJails".into(), v("three"));
        m.appeared(&props, t(0));
        let s = m.snapshot().unwrap();
        assert!(
            !s.version.contains('\n') && !s.version.contains('\u{202e}'),
            "{}",
            s.version
        );
        assert_eq!(s.active_jails, 0);
        assert_eq!(Record::from_dict(&HashMap::new()), None);
    }

    #[test]
    fn status_text_lists_the_jails() {
        let mut m = Model::new(Duration::from_secs(60));
        let mut props = online(2);
        props.insert(
            "Jails".into(),
            v(vec![
                ("alpha".to_string(), 1u32, 5u32, 2u32, 7u32),
                ("beta".to_string(), 0, 0, 0, 0),
            ]),
        );
        m.appeared(&props, t(0));
        let text = m.status_text(t(1));
        assert!(
            text.contains("\nalpha: 2 banned (7 in all), 1 failing"),
            "{text}"
        );
        assert!(text.contains("\nbeta: 0 banned"), "{text}");
    }

    fn trial(jail: &str, started: i64, deadline: i64) -> HashMap<String, OwnedVariant> {
        let d: HashMap<String, Variant<'static>> = HashMap::from([
            ("JailName".to_string(), Variant::from(jail.to_string())),
            ("StartedAt".to_string(), Variant::from(us(started))),
            ("DeadlineAt".to_string(), Variant::from(us(deadline))),
        ]);
        HashMap::from([("Trial".to_string(), v(d))])
    }

    fn no_trial() -> HashMap<String, OwnedVariant> {
        HashMap::from([(
            "Trial".to_string(),
            v(HashMap::<String, Variant<'static>>::new()),
        )])
    }

    /// The record of the trial of `jail` started at `started`: cause 2.
    fn trial_record(
        jail: &str,
        started: i64,
        detected: i64,
        extra: &[(&str, Variant<'static>)],
    ) -> HashMap<String, OwnedVariant> {
        let mut all = vec![
            ("ActivatedAt", Variant::from(us(started))),
            ("Cause", Variant::from(2u32)),
            ("OfflineReason", Variant::from(0u32)),
        ];
        all.extend(extra.iter().map(|(k, x)| (*k, x.try_clone().unwrap())));
        record(jail, detected, false, &all)
    }

    fn local_hm(s: i64) -> String {
        t(s).with_timezone(&Local).format("%H:%M").to_string()
    }

    #[test]
    fn a_running_trial_is_amber_says_until_when_and_offers_keep_and_abort() {
        let mut m = Model::new(Duration::from_secs(60));
        assert!(
            m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1))
                .is_empty()
        );
        let view = m.view(t(5));
        assert_eq!(view.colour, Colour::Amber);
        assert!(!view.attention);
        assert_eq!(view.title, "fail2ban 1.0.2 online, trying gamma");
        assert_eq!(
            view.lines[1],
            format!("Trying gamma until {}", local_hm(600))
        );
        assert_eq!(view.menu[1], Entry::Text(view.lines[1].clone()));
        assert_eq!(
            actions(&view),
            [
                ("Keep gamma".to_string(), true),
                ("Roll back gamma now".to_string(), true),
                ("Dismiss".to_string(), false),
                ("Probe now".to_string(), true),
                ("Show status".to_string(), true),
                ("Quit".to_string(), true)
            ]
        );
        let entry = |a: Action| {
            view.menu
                .iter()
                .any(|e| matches!(e, Entry::Item { action, .. } if *action == a))
        };
        assert!(entry(Action::Confirm) && entry(Action::Abort));
        // No timer runs for the trial: the applet stays idle.
        assert_eq!(m.next_change(t(5)), None);
        // A deadline more than 12 h away carries its date; a passed one
        // says the daemon is judging.
        m.changed(&trial("gamma", 0, 20 * 3600), t(6));
        let date = t(20 * 3600).with_timezone(&Local).format("%Y-%m-%d %H:%M");
        assert_eq!(m.view(t(6)).lines[1], format!("Trying gamma until {date}"));
        assert!(
            m.view(t(20 * 3600 + 1)).lines[1].contains("has passed"),
            "{:?}",
            m.view(t(20 * 3600 + 1)).lines
        );
        // Ended: green again, no trial line, no trial actions.
        assert!(m.changed(&no_trial(), t(7)).is_empty());
        let view = m.view(t(7));
        assert_eq!(view.colour, Colour::Green);
        assert!(!view.lines.iter().any(|l| l.contains("gamma")), "{view:?}");
        assert!(
            !actions(&view).iter().any(|(l, _)| l.contains("gamma")),
            "{view:?}"
        );
    }

    #[test]
    fn keep_and_abort_are_disabled_while_either_runs_and_during_the_rollback() {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
        m.set_busy(Some(Action::Confirm));
        let a = actions(&m.view(t(2)));
        assert_eq!(a[0], ("Keeping gamma…".to_string(), false));
        assert_eq!(a[1], ("Roll back gamma now".to_string(), false));
        // A refused Confirm: both come back.
        m.finished(Action::Confirm, false);
        let a = actions(&m.view(t(2)));
        assert_eq!(a[0], ("Keep gamma".to_string(), true));
        assert_eq!(a[1], ("Roll back gamma now".to_string(), true));
        m.set_busy(Some(Action::Abort));
        let a = actions(&m.view(t(3)));
        assert_eq!(a[0], ("Keep gamma".to_string(), false));
        assert_eq!(a[1], ("Rolling back gamma…".to_string(), false));
        // Abort answers before the rollback ends: both stay disabled until
        // the trial is over.
        m.finished(Action::Abort, true);
        assert_eq!(m.busy(), None);
        let a = actions(&m.view(t(4)));
        assert_eq!(a[0], ("Keep gamma".to_string(), false));
        assert_eq!(a[1], ("Rolling back gamma…".to_string(), false));
        // fail2ban restarting for that rollback is no notice of its own.
        assert!(m.changed(&offline(3), t(5)).is_empty());
        assert!(m.changed(&online(3), t(6)).is_empty());
        assert!(m.changed(&no_trial(), t(7)).is_empty());
        assert_eq!(
            m.trial_ended("gamma", false, 0),
            [Notice::TrialEnded {
                jail: "gamma".into(),
                kept: false,
                cause: 0,
                record: None,
                online: true,
                state: "fail2ban 1.0.2 is online with 3 jails".into(),
            }]
        );
        // The next trial of the same jail is a new one: its actions work.
        m.changed(&trial("gamma", 10, 600), t(10));
        let a = actions(&m.view(t(10)));
        assert_eq!(a[0], ("Keep gamma".to_string(), true));
        assert_eq!(a[1], ("Roll back gamma now".to_string(), true));
    }

    #[test]
    fn the_trials_failure_offers_no_manual_rollback_and_is_one_story() {
        let mut m = Model::new(Duration::from_secs(0));
        m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
        // The failure: recorded against the trial's activation.
        let n = m.changed(&trial_record("gamma", 0, 2, &[]), t(2));
        assert!(
            matches!(&n[..], [Notice::TrialFailed { record }] if record.jail == "gamma"),
            "{n:?}"
        );
        assert_eq!(m.offers_rollback(), None);
        let view = m.view(t(2));
        assert_eq!(view.colour, Colour::Red);
        assert!(
            view.lines[1].contains("Trial of gamma failed")
                && view.lines[1].contains("rolls it back automatically"),
            "{:?}",
            view.lines
        );
        assert_eq!(
            actions(&view)[..3],
            [
                ("Keep gamma".to_string(), false),
                ("Rolling back gamma…".to_string(), false),
                ("Dismiss".to_string(), false),
            ]
        );
        assert!(
            !actions(&view).iter().any(|(l, _)| l == "Roll back gamma"),
            "{view:?}"
        );
        // Rolled back by the daemon, resolved, the trial over: no resolution
        // notice, no "back online".
        let done = [
            ("RolledBack", Variant::from(true)),
            ("AutoRolledBack", Variant::from(true)),
            ("Recovered", Variant::from(true)),
            ("RecoveredAt", Variant::from(us(4))),
        ];
        let step = merged(trial_record("gamma", 0, 2, &done), no_trial());
        assert!(m.changed(&step, t(4)).is_empty());
        let n = m.trial_ended("gamma", false, 2);
        let [
            Notice::TrialEnded {
                jail,
                kept: false,
                cause: 2,
                record: Some(r),
                online: true,
                state,
            },
        ] = &n[..]
        else {
            panic!("{n:?}")
        };
        assert_eq!(jail, "gamma");
        assert!(r.auto_rolled_back && r.rolled_back, "{r:?}");
        assert_eq!(state, "fail2ban 1.0.2 is online with 3 jails");
        let view = m.view(t(5));
        assert_eq!(view.colour, Colour::Amber);
        assert!(
            view.lines
                .iter()
                .any(|l| l.starts_with("rolled back automatically (trial); resolved at")),
            "{:?}",
            view.lines
        );
        assert!(
            !actions(&view)
                .iter()
                .any(|(l, _)| l.starts_with("Roll back")),
            "{view:?}"
        );
        assert_eq!(actions(&view)[0], ("Dismiss".to_string(), true));
    }

    #[test]
    fn a_trial_that_takes_fail2ban_down_is_one_notice_not_offline_and_back() {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
        let step = merged(
            offline(3),
            trial_record("gamma", 0, 2, &[("Cause", Variant::from(1u32))]),
        );
        let n = m.changed(&step, t(2));
        assert!(matches!(&n[..], [Notice::TrialFailed { .. }]), "{n:?}");
        assert_eq!(m.offers_rollback(), None);
        assert!(m.changed(&online(3), t(3)).is_empty());
        let rolled = [
            ("Cause", Variant::from(1u32)),
            ("RolledBack", Variant::from(true)),
            ("AutoRolledBack", Variant::from(true)),
            ("Recovered", Variant::from(true)),
        ];
        let step = merged(trial_record("gamma", 0, 2, &rolled), no_trial());
        assert!(m.changed(&step, t(4)).is_empty());
        let n = m.trial_ended("gamma", false, 1);
        assert!(
            matches!(
                &n[..],
                [Notice::TrialEnded {
                    record: Some(_),
                    cause: 1,
                    ..
                }]
            ),
            "{n:?}"
        );
    }

    #[test]
    fn trial_end_notices_for_kept_and_a_record_of_another_activation() {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
        // Another activation's crash during the trial is an ordinary crash,
        // but no manual rollback is offered while the trial runs.
        let other = record("delta", 5, false, &[("Cause", Variant::from(2u32))]);
        let n = m.changed(&other, t(5));
        assert!(
            matches!(&n[..], [Notice::Crash { record }] if record.jail == "delta"),
            "{n:?}"
        );
        assert_eq!(m.offers_rollback(), None);
        m.changed(&no_trial(), t(6));
        assert_eq!(m.offers_rollback().map(|r| r.jail.as_str()), Some("delta"));
        let n = m.trial_ended("gamma", true, 0);
        assert_eq!(
            n,
            [Notice::TrialEnded {
                jail: "gamma".into(),
                kept: true,
                cause: 0,
                record: None,
                online: true,
                state: "fail2ban 1.0.2 is online".into(),
            }]
        );
        // Without the daemon the state says so.
        m.gone();
        let n = m.trial_ended("gamma\u{202e}", true, 0);
        let [
            Notice::TrialEnded {
                jail,
                online,
                state,
                ..
            },
        ] = &n[..]
        else {
            panic!("{n:?}")
        };
        assert!(!jail.contains('\u{202e}'), "{jail}");
        assert!(!online);
        assert_eq!(state, "fail2ban-healthd is not on the bus");
    }

    #[test]
    fn hostile_trial_values_are_cleaned_or_ignored() {
        let d = |pairs: Vec<(&str, Variant<'static>)>| -> HashMap<String, OwnedVariant> {
            pairs
                .into_iter()
                .map(|(k, x)| (k.to_string(), OwnedVariant::try_from(x).unwrap()))
                .collect()
        };
        // No name, a name of the wrong type, an empty name: no trial.
        assert_eq!(Trial::from_dict(&HashMap::new()), None);
        assert_eq!(
            Trial::from_dict(&d(vec![("JailName", Variant::from(7u32))])),
            None
        );
        assert_eq!(
            Trial::from_dict(&d(vec![("JailName", Variant::from(""))])),
            None
        );
        // Control and bidi characters escaped, times of the wrong type 0.
        let t0 = Trial::from_dict(&d(vec![
            ("JailName", Variant::from("ev\u{202e}il\nname")),
            ("StartedAt", Variant::from("yesterday")),
            ("DeadlineAt", Variant::from(u64::MAX)),
        ]))
        .unwrap();
        assert!(
            !t0.jail.contains('\n') && !t0.jail.contains('\u{202e}'),
            "{}",
            t0.jail
        );
        assert_eq!(t0.started_at, 0);
        // A start of 0 owns no record, even one activated at 0.
        let r = Record {
            jail: t0.jail.clone(),
            ..Record::default()
        };
        assert!(!t0.owns(&r));
        assert!(
            trial_line(&t0, None, t(0)).ends_with("until an unknown time"),
            "{}",
            trial_line(&t0, None, t(0))
        );

        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
        // A Trial of the wrong type is ignored: the trial stays.
        let wrong = HashMap::from([("Trial".to_string(), v("gamma"))]);
        assert!(m.changed(&wrong, t(2)).is_empty());
        assert_eq!(m.trial().map(|t| t.jail.as_str()), Some("gamma"));
        // A hostile AutoRolledBack is not true.
        let rec = record("beta", 3, true, &[("AutoRolledBack", Variant::from("yes"))]);
        m.changed(&merged(rec, no_trial()), t(3));
        assert!(!m.record().unwrap().auto_rolled_back);
    }

    #[test]
    fn spans_in_words() {
        assert_eq!(span(500_000), "under a second");
        assert_eq!(span(61_000_000), "61 s");
        assert_eq!(span(600_000_000), "10 min");
        assert_eq!(span(10_800_000_000), "3 h");
        assert_eq!(span(300_000_000_000), "3 days");
        assert_eq!(ago(us(10), t(5)), "just now");
    }
}
