//! What the monitor keeps across a restart of the daemon ([`Memory`],
//! written to the state file by the caller), and how a monitor is rebuilt
//! from it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::seen::Seen;
use super::window::ActivationWindow;
use super::{Activation, Monitor, Now, RecoveryRecord, Timing, Trial};

/// What the monitor must not forget across a restart of the daemon: the
/// activations that can still be blamed and the recovery record. Times are
/// wall-clock, since the monotonic clock does not survive a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Memory {
    /// The latest activation.
    pub last_activation: Option<Activation>,
    /// Jails running when it was registered (`None` if fail2ban was offline).
    pub jails_before: Option<Vec<String>>,
    /// Whether a record was attributed to it already.
    pub spent: bool,
    /// Whether its jail was running before it (see
    /// [`RecoveryRecord::ran_before`]).
    pub ran_before: bool,
    /// The jails seen running, each with when it was first seen (`None`:
    /// before the daemon first looked), sorted by name.
    pub seen_jails: Vec<(String, Option<DateTime<Utc>>)>,
    /// Recent activations, oldest first, for `SuspectJails`.
    pub recent: Vec<Activation>,
    /// The recovery record.
    pub record: Option<RecoveryRecord>,
    /// The running trial.
    pub trial: Option<Trial>,
}

impl Monitor {
    /// A monitor that remembers `memory`, saved by an earlier run. An
    /// activation's window continues by wall-clock time: what elapsed on
    /// the wall clock since it was registered counts, a clock set back
    /// counts as no time.
    pub fn restored(timing: Timing, now: Now, memory: Memory) -> Self {
        let mut m = Self::new(timing, now);
        let mono_of = |a: &Activation| -> Option<Instant> {
            let elapsed = (now.wall - a.activated_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if elapsed > timing.crash_window {
                return None;
            }
            now.mono.checked_sub(elapsed)
        };
        m.recent = memory
            .recent
            .iter()
            .filter_map(|a| mono_of(a).map(|at| (a.clone(), at)))
            .collect();
        if let Some(latest) = &memory.last_activation
            && let Some(at) = mono_of(latest)
        {
            m.window = Some(ActivationWindow {
                activation: latest.clone(),
                opened: at,
                jails_before: memory.jails_before.clone(),
                spent: memory.spent,
                ran_before: memory.ran_before,
                length: timing.crash_window,
            });
        }
        m.seen = Seen::restored(&memory.seen_jails, now);
        m.snapshot.last_activation = memory.last_activation;
        m.snapshot.pending_recovery = memory.record;
        if let Some(trial) = memory.trial {
            m.restore_trial(now, trial);
        }
        m
    }

    /// What must survive a restart; see [`Memory`].
    pub fn memory(&self) -> Memory {
        Memory {
            last_activation: self.snapshot.last_activation.clone(),
            jails_before: self.window.as_ref().and_then(|w| w.jails_before.clone()),
            spent: self.window.as_ref().is_some_and(|w| w.spent),
            ran_before: self.window.as_ref().is_some_and(|w| w.ran_before),
            seen_jails: self.seen.remembered(),
            recent: self.recent.iter().map(|(a, _)| a.clone()).collect(),
            record: self.snapshot.pending_recovery.clone(),
            trial: self.snapshot.trial.clone(),
        }
    }
}
