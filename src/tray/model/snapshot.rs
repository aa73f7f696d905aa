//! What the daemon's properties say ([`Snapshot`]), with the recovery
//! record and the running trial read from their dictionaries. Values of
//! the wrong type are ignored; text is cleaned as it is read.

use std::collections::HashMap;

use zbus::{OwnedVariant, Variant};

use fail2ban_healthd::health::OfflineReason;

use super::words::{clean, list, reason_words};

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
    pub(super) fn trial_rolling_back(&self, aborting: Option<&(String, u64)>) -> bool {
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
