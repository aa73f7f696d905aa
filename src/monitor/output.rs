//! What comes out of the monitor, kept apart as str0m keeps
//! `Output::{Timeout, Transmit, Event}`: [`Action`]s the caller must carry
//! out (and report back as inputs), and [`Event`]s that announce what
//! happened. The third output, when to call again, is
//! [`Monitor::poll_timeout`](super::Monitor::poll_timeout).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Activation, RecoveryRecord};
use crate::health::OfflineReason;

/// Something the caller must do now; each is answered by an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a probe; feed its end back as [`Input::ProbeFinished`], or
    /// as [`Input::ProbeAborted`] when this process could not make it.
    ///
    /// [`Input::ProbeFinished`]: super::Input::ProbeFinished
    /// [`Input::ProbeAborted`]: super::Input::ProbeAborted
    StartProbe,
    /// Roll back the trial's jail: put the drop-in back as it was and
    /// bring fail2ban back; feed the end back as
    /// [`Input::RollbackFinished`](super::Input::RollbackFinished) with
    /// this activation.
    RollBackTrial {
        /// The trial's activation.
        activation: Activation,
        /// What the drop-in held before the trial (`None`: no file).
        dropin_before: Option<String>,
    },
}

/// Something that happened, to announce (signals, the journal).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
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
