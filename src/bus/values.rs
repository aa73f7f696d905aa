//! Snapshots as bus values: property values, record dictionaries, and the
//! set of properties that changed between two snapshots.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use zbus::{OwnedVariant, Str, Variant};

use crate::health::JailStats;
use crate::monitor::{Activation, Cause, RecoveryRecord, Snapshot, Trial};

/// A time as the contract gives it: microseconds since the Unix epoch,
/// `0` for never.
pub fn usec(t: Option<DateTime<Utc>>) -> u64 {
    t.map_or(0, |t| u64::try_from(t.timestamp_micros()).unwrap_or(0))
}

/// The `Jails` property: `a(suuuu)`, sorted by name.
pub fn jails(jails: &[JailStats]) -> Vec<(String, u32, u32, u32, u32)> {
    jails
        .iter()
        .map(|j| {
            (
                j.name.clone(),
                j.currently_failed,
                j.total_failed,
                j.currently_banned,
                j.total_banned,
            )
        })
        .collect()
}

fn string(s: &str) -> OwnedVariant {
    OwnedVariant::from(Str::from(s.to_owned()))
}

/// The `LastActivation` property: `{}` or `{JailName, ActivatedAt}`.
pub fn activation(a: Option<&Activation>) -> HashMap<String, OwnedVariant> {
    let mut map = HashMap::new();
    if let Some(a) = a {
        map.insert("JailName".into(), string(&a.jail_name));
        map.insert(
            "ActivatedAt".into(),
            OwnedVariant::from(usec(Some(a.activated_at))),
        );
    }
    map
}

/// The `PendingRecovery` property: `{}` or the recovery record. Cause-3
/// records add `VanishedJails` (`as`). `RanBefore` (`b`, an addition to the
/// contract's keys) says the jail ran before its activation, so that
/// `Rollback` will refuse it: applets hide their Roll back action then.
pub fn record(r: Option<&RecoveryRecord>) -> HashMap<String, OwnedVariant> {
    let mut map = HashMap::new();
    let Some(r) = r else {
        return map;
    };
    map.insert("JailName".into(), string(&r.jail_name));
    map.insert(
        "ActivatedAt".into(),
        OwnedVariant::from(usec(Some(r.activated_at))),
    );
    map.insert(
        "DetectedAt".into(),
        OwnedVariant::from(usec(Some(r.detected_at))),
    );
    map.insert("Recovered".into(), OwnedVariant::from(r.recovered()));
    map.insert(
        "RecoveredAt".into(),
        OwnedVariant::from(usec(r.recovered_at)),
    );
    map.insert("Cause".into(), OwnedVariant::from(r.cause.code()));
    map.insert(
        "OfflineReason".into(),
        OwnedVariant::from(r.cause.offline_reason().code()),
    );
    if let Ok(v) = OwnedVariant::try_from(Variant::from(r.suspect_jails.clone())) {
        map.insert("SuspectJails".into(), v);
    }
    map.insert("RolledBack".into(), OwnedVariant::from(r.rolled_back));
    map.insert(
        "AutoRolledBack".into(),
        OwnedVariant::from(r.auto_rolled_back),
    );
    map.insert("RanBefore".into(), OwnedVariant::from(r.ran_before));
    if let Some(exit) = &r.unit_exit {
        map.insert("UnitResult".into(), string(&exit.result));
        map.insert("ExitStatus".into(), OwnedVariant::from(exit.exit_status));
    }
    if let Cause::JailsVanished(names) = &r.cause
        && let Ok(v) = OwnedVariant::try_from(Variant::from(names.clone()))
    {
        map.insert("VanishedJails".into(), v);
    }
    map
}

/// The `Trial` property: `{}` or `{JailName, StartedAt, DeadlineAt}`.
pub fn trial(t: Option<&Trial>) -> HashMap<String, OwnedVariant> {
    let mut map = HashMap::new();
    if let Some(t) = t {
        map.insert("JailName".into(), string(&t.jail_name));
        map.insert(
            "StartedAt".into(),
            OwnedVariant::from(usec(Some(t.started_at))),
        );
        map.insert(
            "DeadlineAt".into(),
            OwnedVariant::from(usec(Some(t.deadline_at))),
        );
    }
    map
}

/// The answer of `Check()`: `{Ok, Messages}`.
pub fn check(r: &crate::fail2ban::check::CheckReport) -> HashMap<String, OwnedVariant> {
    let mut map = HashMap::new();
    map.insert("Ok".into(), OwnedVariant::from(r.ok));
    if let Ok(v) = OwnedVariant::try_from(Variant::from(r.messages.clone())) {
        map.insert("Messages".into(), v);
    }
    map
}

/// The answer of `Rollback()`.
pub fn rollback(o: &crate::rollback::Outcome) -> HashMap<String, OwnedVariant> {
    let mut map = HashMap::new();
    map.insert("JailName".into(), string(&o.jail));
    map.insert("DropInPath".into(), string(&o.dropin.display().to_string()));
    map.insert("Restarted".into(), OwnedVariant::from(o.restarted));
    map.insert("Online".into(), OwnedVariant::from(o.online));
    map.insert("ActiveJails".into(), OwnedVariant::from(o.active_jails));
    map
}

/// The properties that differ between two snapshots and announce their
/// changes, with their new values, for one `PropertiesChanged`.
pub fn changed(before: &Snapshot, after: &Snapshot) -> HashMap<&'static str, Variant<'static>> {
    let mut out = HashMap::new();
    if before.online != after.online {
        out.insert("Online", Variant::from(after.online));
    }
    if before.offline_reason != after.offline_reason {
        out.insert("OfflineReason", Variant::from(after.offline_reason.code()));
    }
    if before.version != after.version {
        out.insert("Version", Variant::from(after.version.clone()));
    }
    if before.jails.len() != after.jails.len() {
        out.insert("ActiveJails", Variant::from(active_jails(after)));
    }
    if before.jails != after.jails {
        out.insert("Jails", Variant::from(jails(&after.jails)));
    }
    if before.last_activation != after.last_activation {
        out.insert(
            "LastActivation",
            Variant::from(activation(after.last_activation.as_ref())),
        );
    }
    if before.pending_recovery != after.pending_recovery {
        out.insert(
            "PendingRecovery",
            Variant::from(record(after.pending_recovery.as_ref())),
        );
    }
    if before.trial != after.trial {
        out.insert("Trial", Variant::from(trial(after.trial.as_ref())));
    }
    out
}

/// The `ActiveJails` property.
pub fn active_jails(s: &Snapshot) -> u32 {
    u32::try_from(s.jails.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::OfflineReason;

    #[test]
    fn only_what_changed_is_announced() {
        let before = Snapshot::default();
        assert!(changed(&before, &before).is_empty());
        let after = Snapshot {
            online: true,
            offline_reason: OfflineReason::None,
            version: "1.0.2".into(),
            last_probe: Some(Utc::now()),
            ..Snapshot::default()
        };
        let c = changed(&before, &after);
        let mut keys: Vec<_> = c.keys().copied().collect();
        keys.sort();
        // LastProbeTimestamp changes on every probe but never announces.
        assert_eq!(keys, ["OfflineReason", "Online", "Version"]);
    }

    #[test]
    fn times_are_microseconds_and_zero_for_never() {
        assert_eq!(usec(None), 0);
        let t = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        assert_eq!(usec(Some(t)), 1_700_000_000_000_005);
    }
}
