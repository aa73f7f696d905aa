//! The activation and recovery-record values the monitor publishes.

use chrono::{DateTime, Utc};

use crate::health::OfflineReason;

/// A registered activation: "jail X was just switched on".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The activated jail.
    pub jail_name: String,
    /// When the activation was registered.
    pub activated_at: DateTime<Utc>,
}

/// Why a failure was attributed to an activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Cause 1: fail2ban went offline, for this reason.
    WentOffline(OfflineReason),
    /// Cause 2: the activated jail is not running while fail2ban is online.
    JailNotRunning,
    /// Cause 3: these jails, running at the activation, disappeared.
    JailsVanished(Vec<String>),
}

impl Cause {
    /// The contract's number for the cause.
    pub fn code(&self) -> u32 {
        match self {
            Cause::WentOffline(_) => 1,
            Cause::JailNotRunning => 2,
            Cause::JailsVanished(_) => 3,
        }
    }

    /// The offline reason of a cause-1 failure, else none.
    pub fn offline_reason(&self) -> OfflineReason {
        match self {
            Cause::WentOffline(reason) => *reason,
            _ => OfflineReason::None,
        }
    }
}

/// A failure attributed to an activation: the pending recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRecord {
    /// The activation the failure is attributed to.
    pub jail_name: String,
    /// When that activation was registered.
    pub activated_at: DateTime<Utc>,
    /// When the failure was detected.
    pub detected_at: DateTime<Utc>,
    /// When the failure cleared; `None` while it has not.
    pub recovered_at: Option<DateTime<Utc>>,
    /// What failed.
    pub cause: Cause,
    /// Every jail activated within the window before the failure, newest
    /// first (the record's jail among them).
    pub suspect_jails: Vec<String>,
    /// For cause 1, how fail2ban's systemd unit ended, when known.
    pub unit_exit: Option<UnitExit>,
    /// The jail was disabled by a rollback and fail2ban restarted.
    pub rolled_back: bool,
    /// That rollback was a trial's, done by the daemon itself.
    pub auto_rolled_back: bool,
    /// The record's jail was running (or, with fail2ban offline then, was
    /// running when fail2ban was last seen) when it was activated: it
    /// protected the machine before, so a rollback must not disable it.
    pub ran_before: bool,
}

/// How fail2ban's systemd unit ended, as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitExit {
    /// The unit's `Result`, e.g. `signal`, `exit-code`, `success`.
    pub result: String,
    /// The main process's `ExecMainStatus`: its exit code, or the signal
    /// that killed it.
    pub exit_status: i32,
}

impl RecoveryRecord {
    /// Whether the failure has cleared since.
    pub fn recovered(&self) -> bool {
        self.recovered_at.is_some()
    }
}
