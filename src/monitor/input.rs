//! What goes into the monitor: the facts it is fed ([`Input`]) and why it
//! may refuse one ([`Refusal`]).

use std::time::Duration;

use super::{Activation, UnitState};
use crate::health::{OfflineReason, ServerStatus};

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
