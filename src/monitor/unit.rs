//! fail2ban's systemd units as the monitor sees them: one report of the
//! service (and, under socket activation, of its `.socket` unit) at a
//! moment, what two reports in a row say happened, and the rules that
//! apply to it (a failure systemd saw is a crash; a clean stop opens the
//! restart grace; under socket activation nothing connects while the
//! service is stopped).

use super::record::UnitExit;
use super::{Cause, Monitor, Now};
use crate::health::OfflineReason;

/// fail2ban's service unit as systemd reported it at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    /// The service's `ActiveState`: `active`, `reloading`, `activating`,
    /// `deactivating`, `inactive`, `failed`.
    pub active_state: String,
    /// The service's `Result`: `success`, `exit-code`, `signal`, ...
    pub result: String,
    /// `ExecMainStatus`: the exit code, or the signal that killed it.
    pub exit_status: i32,
    /// `InvocationID` as hex; it changes with every start.
    pub invocation_id: String,
    /// `NRestarts`: how often systemd restarted it by itself.
    pub n_restarts: u32,
    /// Under socket activation, the `.socket` unit's `ActiveState`;
    /// `None` when the service is not socket-activated.
    pub socket_state: Option<String>,
}

/// What changed between two reports of the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UnitChange {
    /// Nothing the rules care about.
    Nothing,
    /// It stopped on purpose (a stop or restart job, or an exit with
    /// `Result=success`).
    StoppedCleanly,
    /// It failed, was killed, or systemd restarted it after a failure;
    /// how it ended, when the report still says (a restart already done
    /// has reset it).
    Failed(Option<UnitExit>),
    /// It is running again, or runs a new invocation.
    Started,
}

impl UnitState {
    /// Whether the service runs.
    pub fn up(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "reloading" | "refreshing"
        )
    }

    /// Whether systemd is stopping the service.
    pub fn stopping(&self) -> bool {
        self.active_state == "deactivating"
    }

    /// Whether the service is socket-activated.
    pub fn socket_activated(&self) -> bool {
        self.socket_state.is_some()
    }

    fn failed_result(&self) -> bool {
        !self.result.is_empty() && self.result != "success"
    }

    /// How the unit ended, as a record shows it.
    pub fn exit(&self) -> UnitExit {
        UnitExit {
            result: self.result.clone(),
            exit_status: self.exit_status,
        }
    }

    /// Why the daemon must not connect now, under socket activation: a
    /// connection to a listening socket whose service is not running would
    /// start fail2ban. `None` when connecting is harmless: the service runs,
    /// or the socket does not listen (it failed, or was stopped).
    pub fn gate(&self) -> Option<OfflineReason> {
        let socket = self.socket_state.as_deref()?;
        if self.up() || !matches!(socket, "active" | "activating" | "deactivating") {
            return None;
        }
        if self.active_state == "failed" {
            return Some(OfflineReason::UnitFailed);
        }
        Some(OfflineReason::Inactive)
    }

    /// The reason systemd gives for fail2ban being offline, which says more
    /// than what a connection attempt saw: the service failed (including
    /// `start-limit-hit`), or, under socket activation, the service is not
    /// running and its socket listens, or the socket failed.
    pub fn offline_reason(&self) -> Option<OfflineReason> {
        if self.active_state == "failed" {
            return Some(OfflineReason::UnitFailed);
        }
        if self.socket_state.as_deref() == Some("failed") {
            return Some(OfflineReason::SocketFailed);
        }
        self.gate()
    }

    /// What happened between `self` (earlier) and `next`.
    pub(super) fn change_to(&self, next: &UnitState) -> UnitChange {
        let new_invocation = !self.invocation_id.is_empty()
            && !next.invocation_id.is_empty()
            && self.invocation_id != next.invocation_id;
        let restarted_itself = next.n_restarts > self.n_restarts;
        // A failure is news when the result turned bad, or a new run ended
        // badly, or the unit entered the failed state.
        let newly_failed = next.failed_result()
            && (!self.failed_result()
                || new_invocation
                || restarted_itself
                || (next.active_state == "failed" && self.active_state != "failed"));
        if newly_failed {
            return UnitChange::Failed(Some(next.exit()));
        }
        if restarted_itself {
            return UnitChange::Failed(None);
        }
        if self.up() && !next.up() {
            return UnitChange::StoppedCleanly;
        }
        if next.up() && (!self.up() || new_invocation) {
            if new_invocation && self.up() {
                // Stopped and started again between two reports: a
                // restart job, since no failure was reported.
                return UnitChange::StoppedCleanly;
            }
            return UnitChange::Started;
        }
        UnitChange::Nothing
    }
}

impl Monitor {
    /// fail2ban's unit as reported now.
    pub(super) fn unit_changed(&mut self, now: Now, next: UnitState) {
        let change = self
            .unit
            .as_ref()
            .map_or(UnitChange::Nothing, |before| before.change_to(&next));
        let was_stopping = self.unit_stopping();
        self.unit = Some(next);
        if was_stopping && !self.unit_stopping() {
            // The stop is over: the new server gets the whole grace.
            let grace = self.timing.restart_grace;
            if let Some(g) = self.grace.as_mut().filter(|g| !g.came_back) {
                g.until = now.mono + grace;
            }
        }
        match change {
            UnitChange::Failed(exit) => self.unit_failed(now, exit),
            UnitChange::StoppedCleanly => {
                // A refusal or timeout seen just before was this stop's.
                self.unconfirmed = None;
                if self.snapshot.online {
                    self.stopped_after_return(now);
                }
                self.open_grace(now);
                self.request_probe(now);
            }
            UnitChange::Started => self.server_starting(now),
            UnitChange::Nothing => {}
        }
        if let Some(reason) = self.connect_gate() {
            self.went_offline(now, reason);
        } else if let Some(reason) = self.unit.as_ref().and_then(UnitState::offline_reason)
            && !self.snapshot.online
        {
            self.snapshot.offline_reason = reason;
        }
    }

    /// Whether systemd is stopping fail2ban.
    pub(super) fn unit_stopping(&self) -> bool {
        self.unit.as_ref().is_some_and(UnitState::stopping)
    }

    /// fail2ban's unit failed, was killed, or was restarted by systemd
    /// after a failure: a crash, even if fail2ban answers again already.
    fn unit_failed(&mut self, now: Now, exit: Option<UnitExit>) {
        // The lost connection, if any, was this failure's.
        self.held_connection_lost = false;
        let Some(exit) = exit else {
            // Seen only once systemd had restarted it: how it ended is gone.
            self.unit_exit = None;
            self.crash_while(now);
            self.request_probe(now);
            return;
        };
        let attached = match self.snapshot.pending_recovery.as_mut() {
            // A clean stop (a restart's) gives way to the failure that
            // follows it, which says more.
            Some(r)
                if !r.recovered()
                    && r.unit_exit.as_ref().is_none_or(|u| u.result == "success")
                    && matches!(r.cause, Cause::WentOffline(_)) =>
            {
                r.unit_exit = Some(exit.clone());
                true
            }
            _ => false,
        };
        self.unit_exit = Some((exit, now.mono));
        if !attached {
            self.crash_while(now);
        }
        self.request_probe(now);
    }

    /// A crash systemd reported: recorded with the reason seen now (a lost
    /// connection, if fail2ban was answering until then).
    fn crash_while(&mut self, now: Now) {
        let reason = if self.snapshot.online {
            OfflineReason::ConnectionLost
        } else {
            self.snapshot.offline_reason
        };
        self.failure(now, Cause::WentOffline(reason));
    }
}
