//! When the next probe runs: the plan made after every probe, the
//! requests that bring it forward, and the start of a due probe.

use std::time::Duration;

use super::restart::SETTLE_EVERY;
use super::{Action, Monitor, Now, UnitState};
use crate::health::OfflineReason;

/// The least time between the end of a probe and one started because the
/// idle connection closed.
const IDLE_CLOSE_FLOOR: Duration = Duration::from_millis(50);

/// After the socket appears, how long to keep retrying while the new
/// server does not answer yet, and how often.
const STARTUP_RETRY_FOR: Duration = Duration::from_secs(3);
const STARTUP_RETRY_EVERY: Duration = Duration::from_millis(100);

/// After a connection was refused, how long to wait before asking again:
/// a graceful stop of fail2ban 1.1 may refuse for a moment before its
/// socket file goes (it closes the socket, then removes the file), which a
/// crash never does. A timeout is asked again at
/// once: fail2ban 1.1 answers nothing while it stops its jails (about a
/// second per jail), and only then removes its socket.
const REFUSAL_CONFIRM_AFTER: Duration = Duration::from_millis(10);

/// After a probe the daemon itself could not make (out of file
/// descriptors, say), the next one waits at least this long.
const LOCAL_RETRY: Duration = Duration::from_secs(1);

impl Monitor {
    /// Starts the planned probe if it is due and connecting is allowed.
    pub(super) fn start_due_probe(&mut self, now: Now) {
        if !self.probe_in_flight && self.connect_gate().is_none() && now.mono >= self.next_probe {
            self.probe_in_flight = true;
            self.probe_again = false;
            self.actions.push_back(Action::StartProbe);
        }
    }

    /// Someone wants a probe now: at once, or right after the running one.
    pub(super) fn request_probe(&mut self, now: Now) {
        if self.probe_in_flight {
            self.probe_again = true;
        } else {
            self.next_probe = self.next_probe.min(now.mono);
        }
    }

    /// A server is starting: probe now, and again shortly while it does
    /// not answer yet.
    pub(super) fn server_starting(&mut self, now: Now) {
        self.startup_until = Some(now.mono + STARTUP_RETRY_FOR);
        self.request_probe(now);
    }

    /// fail2ban's socket file (re)appeared.
    pub(super) fn socket_appeared(&mut self, now: Now) {
        // While a probe runs, "online" may be stale: act anyway.
        if !self.snapshot.online || self.probe_in_flight {
            self.server_starting(now);
        }
    }

    /// The connection held open between probes was closed.
    pub(super) fn idle_connection_closed(&mut self, now: Now) {
        if self.snapshot.online {
            self.held_connection_lost = true;
        }
        // Under socket activation a connection now could start fail2ban
        // again after it exited on its own: the unit's report says what
        // happened and asks for the probe.
        if self.unit.as_ref().is_some_and(UnitState::socket_activated) {
            return;
        }
        // At once, but never back to back with the previous probe: a peer
        // that closes every connection cannot spin us.
        let floor = self
            .last_probe_end
            .map_or(now.mono, |t| t + IDLE_CLOSE_FLOOR);
        if self.probe_in_flight {
            self.probe_again = true;
        } else {
            self.next_probe = self.next_probe.min(floor.max(now.mono));
        }
    }

    /// The probe in flight could not be made, for a reason of this
    /// process's own.
    pub(super) fn probe_aborted(&mut self, now: Now) {
        if self.probe_in_flight {
            self.probe_in_flight = false;
            self.last_probe_end = Some(now.mono);
            self.schedule(now);
            // Whatever was due at once (a timeout to confirm, say) waits:
            // the daemon's own shortage does not pass in a moment, and
            // retrying at once would spin.
            self.next_probe = self.next_probe.max(now.mono + LOCAL_RETRY);
        }
    }

    /// Plans the next probe: an interval after this one ends, sooner when
    /// someone asked during it, and never missing the first moment after
    /// an activation's jail start grace inside its window.
    pub(super) fn schedule(&mut self, now: Now) {
        let mut next = now.mono + self.timing.probe_interval;
        if self.probe_again {
            next = now.mono;
            self.probe_again = false;
        }
        match self.startup_until {
            Some(until) if !self.snapshot.online && now.mono < until => {
                next = next.min(now.mono + STARTUP_RETRY_EVERY);
            }
            _ => self.startup_until = None,
        }
        match self.unconfirmed {
            Some((_, OfflineReason::ConnectionRefused)) => {
                next = next.min(now.mono + REFUSAL_CONFIRM_AFTER);
            }
            Some(_) => next = now.mono,
            None => {}
        }
        if self.settle.is_some() {
            next = next.min(now.mono + SETTLE_EVERY);
        }
        if self.grace.is_some() {
            next = next.min(now.mono + self.timing.watch_interval);
        }
        if let Some(window) = &self.window {
            let start_grace_end = window.opened + self.timing.jail_start_grace;
            let closes = window.closes();
            if now.mono < start_grace_end && start_grace_end <= closes {
                next = next.min(start_grace_end);
            }
            // Close watch while the window is open, so causes 2 and 3 are
            // found within a watch interval of happening.
            if now.mono < closes {
                next = next.min((now.mono + self.timing.watch_interval).min(closes));
            }
        }
        self.next_probe = next;
    }
}
