//! The attribution rules: which failure is blamed on which activation,
//! and the record made of it.
//!
//! - Cause 1: fail2ban went offline while an activation window was open
//!   (or a restart grace that window opened ran out).
//! - Cause 2: once the jail start grace has passed inside the window, the
//!   activated jail does not run.
//! - Cause 3: jails that ran when the activation was registered are gone.
//!
//! One window yields at most one record, none is made while an unresolved
//! record stands, and none while a rollback restarts fail2ban.

use std::time::{Duration, Instant};

use super::window::ActivationWindow;
use super::{Cause, Event, Monitor, Now, RecoveryRecord};

/// How long a unit's exit may precede the record it explains.
const UNIT_EXIT_RELEVANCE: Duration = Duration::from_secs(10);

impl Monitor {
    /// A failure now: recorded against the latest activation if its window
    /// is open, or if a restart grace it opened was still running.
    pub(super) fn failure(&mut self, now: Now, cause: Cause) {
        self.failure_seen(now, now.mono, cause);
    }

    /// A failure first seen at `seen` (judged by the window then), recorded
    /// now.
    pub(super) fn failure_seen(&mut self, now: Now, seen: Instant, cause: Cause) {
        let in_grace = self.grace.take().is_some();
        // The signs that led here are used up: a lost connection or a
        // refusal seen before explains this failure, not another.
        self.unconfirmed = None;
        self.held_connection_lost = false;
        if let Some(window) = self.window.clone().filter(|w| in_grace || w.covers(seen)) {
            self.create_record(now, &window, cause);
        }
    }

    /// Causes 2 and 3, once the jail start grace has passed inside the
    /// window.
    pub(super) fn judge_jails_in_window(&mut self, now: Now) {
        let Some(window) = self.window.clone() else {
            return;
        };
        let age = now.mono.saturating_duration_since(window.opened);
        if age < self.timing.jail_start_grace || !window.covers(now.mono) {
            return;
        }
        self.judge_jails(now, &window);
    }

    /// Records cause 3 when jails that ran before are gone, else cause 2
    /// when the activated jail does not run.
    pub(super) fn judge_jails(&mut self, now: Now, window: &ActivationWindow) {
        let vanished: Vec<String> = window
            .jails_before
            .iter()
            .flatten()
            .filter(|j| !self.snapshot.runs(j))
            .cloned()
            .collect();
        if !vanished.is_empty() {
            self.create_record(now, window, Cause::JailsVanished(vanished));
        } else if !self.snapshot.runs(&window.activation.jail_name) {
            self.create_record(now, window, Cause::JailNotRunning);
        }
    }

    /// Creates a record unless an unresolved one exists or this window
    /// has had one already. Never while a rollback restarts fail2ban.
    pub(super) fn create_record(&mut self, now: Now, window: &ActivationWindow, cause: Cause) {
        if self.snapshot.unresolved().is_some() || window.spent || self.rollback_running {
            return;
        }
        self.spend_window();
        let mut suspect_jails = self.suspects(now);
        if suspect_jails.is_empty() {
            suspect_jails.push(window.activation.jail_name.clone());
        }
        let unit_exit = match (&cause, self.unit_exit.take()) {
            (Cause::WentOffline(_), Some((exit, at)))
                if now.mono.saturating_duration_since(at) <= UNIT_EXIT_RELEVANCE =>
            {
                Some(exit)
            }
            _ => None,
        };
        let record = RecoveryRecord {
            jail_name: window.activation.jail_name.clone(),
            activated_at: window.activation.activated_at,
            detected_at: now.wall,
            recovered_at: None,
            cause,
            suspect_jails,
            unit_exit,
            rolled_back: false,
            auto_rolled_back: false,
            ran_before: window.ran_before,
        };
        self.snapshot.pending_recovery = Some(record.clone());
        self.events.push_back(Event::CrashDetected {
            record,
            since_activation: now.mono.saturating_duration_since(window.opened),
        });
    }
}
