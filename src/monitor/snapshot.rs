//! The published state: one immutable value that property reads, the
//! status line and the metrics are made from.

use chrono::{DateTime, Utc};

use super::{Activation, RecoveryRecord, Trial};
use crate::health::{JailStats, OfflineReason};

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

impl Snapshot {
    /// The names of the running jails, sorted.
    pub(super) fn jail_names(&self) -> Vec<String> {
        self.jails.iter().map(|j| j.name.clone()).collect()
    }

    /// Whether `jail` runs.
    pub(super) fn runs(&self, jail: &str) -> bool {
        self.jails.iter().any(|j| j.name == jail)
    }

    /// The recovery record, while it is not resolved.
    pub(super) fn unresolved(&self) -> Option<&RecoveryRecord> {
        self.pending_recovery.as_ref().filter(|r| !r.recovered())
    }
}
