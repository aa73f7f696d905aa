//! What a finished probe tells: fail2ban answered (online, its jails) or
//! did not (offline, and why), and the rules each applies.

use super::restart::{Settle, is_clean_stop};
use super::{Cause, Event, Monitor, Now, UnitState};
use crate::health::{OfflineReason, ServerStatus};

impl Monitor {
    /// The probe in flight has finished with `result`.
    pub(super) fn probe_finished(&mut self, now: Now, result: Result<ServerStatus, OfflineReason>) {
        self.probe_in_flight = false;
        self.last_probe_end = Some(now.mono);
        self.snapshot.last_probe = Some(now.wall);
        self.trial_probed();
        let held_connection_lost = std::mem::take(&mut self.held_connection_lost);
        // A probe started before the units said fail2ban is down: they win.
        let result = match self.connect_gate() {
            Some(reason) => Err(reason),
            None => result,
        };
        match result {
            Ok(status) => self.answered(now, status, held_connection_lost),
            Err(reason) => {
                // A probe failure never reports "none" or "not probed";
                // systemd's view of the unit says more than a socket can.
                let reason = match reason {
                    OfflineReason::None | OfflineReason::NotProbedYet => {
                        OfflineReason::ProtocolError
                    }
                    r => r,
                };
                let reason = self
                    .unit
                    .as_ref()
                    .and_then(UnitState::offline_reason)
                    .unwrap_or(reason);
                self.went_offline(now, reason);
            }
        }
        self.schedule(now);
    }

    /// fail2ban answered a probe.
    fn answered(&mut self, now: Now, status: ServerStatus, held_connection_lost: bool) {
        let was_online = self.snapshot.online;
        // Before the first probe nothing was seen offline (the daemon just
        // started, possibly with a record restored from disk).
        let seen_offline =
            !was_online && self.snapshot.offline_reason != OfflineReason::NotProbedYet;
        let before = self.snapshot.jail_names();
        self.snapshot.online = true;
        self.snapshot.offline_reason = OfflineReason::None;
        self.snapshot.version = status.version;
        self.snapshot.jails = status.jails;
        let names = self.snapshot.jail_names();
        self.seen.saw(&names, now);
        if was_online {
            self.jail_list_answered(now, &before, names);
        } else {
            self.came_online(now, names);
        }
        if seen_offline {
            // Back online after being offline resolves any cause.
            self.resolve(now);
        }
        self.resolve_cleared(now);
        self.judge_new_server(now, held_connection_lost && was_online);
        if self.settle.is_some() {
            return;
        }
        match &self.grace {
            Some(g) if g.came_back => {
                let grace = self.grace.take();
                self.judge_return(now, grace);
            }
            // The old server still answers while it stops.
            Some(_) => {}
            None => self.judge_jails_in_window(now),
        }
    }

    /// Whether a jail list answered now may still be judged: a restart
    /// grace runs, or a failure now would be attributed to a window.
    fn judging(&self, now: Now) -> bool {
        self.grace.is_some() || self.blamable(now).is_some()
    }

    /// fail2ban, online before, answered with `names` (`before` were the
    /// jails of the previous answer).
    fn jail_list_answered(&mut self, now: Now, before: &[String], names: Vec<String>) {
        let judging = self.judging(now);
        if let Some(settle) = self.settle.as_mut() {
            if settle.settled(now.mono, names) {
                self.settle = None;
            }
        } else if judging && names != before {
            // A list that just changed is judged once it holds still: a
            // stopping fail2ban 1.1 answers with its jails gone just
            // before its socket goes.
            self.settle = Some(Settle::new(now.mono, names));
        }
    }

    /// fail2ban answered after not answering, with `names`.
    fn came_online(&mut self, now: Now, names: Vec<String>) {
        self.events.push_back(Event::CameOnline {
            version: self.snapshot.version.clone(),
        });
        // Only a jail list that can still be judged needs to settle.
        if self.judging(now) {
            self.settle = Some(Settle::new(now.mono, names));
        }
        // An answer while systemd still stops fail2ban comes from the
        // old server, not from its return.
        let stopping = self.unit_stopping();
        if let Some(grace) = self.grace.as_mut().filter(|_| !stopping) {
            grace.came_back = true;
        }
    }

    /// A server that answers right after the held connection was lost
    /// (`lost`), or right after refusing connections, with no stop seen,
    /// is a new one: the old one crashed and was restarted at once. (One
    /// that answers after a timeout was only slow.)
    fn judge_new_server(&mut self, now: Now, lost: bool) {
        let refused = matches!(
            self.unconfirmed.take(),
            Some((_, OfflineReason::ConnectionRefused))
        );
        if self.grace.is_none() && (lost || refused) {
            let reason = if lost {
                OfflineReason::ConnectionLost
            } else {
                OfflineReason::ConnectionRefused
            };
            self.failure(now, Cause::WentOffline(reason));
        }
    }

    /// fail2ban is offline for `reason`: publishes it and applies the
    /// restart rules to a new loss.
    pub(super) fn went_offline(&mut self, now: Now, reason: OfflineReason) {
        let was_online = self.snapshot.online;
        if was_online && is_clean_stop(reason) {
            self.stopped_after_return(now);
        }
        self.snapshot.online = false;
        self.snapshot.offline_reason = reason;
        self.snapshot.version.clear();
        self.snapshot.jails.clear();
        self.settle = None;
        if was_online {
            self.events.push_back(Event::WentOffline { reason });
        }
        let unconfirmed = self.unconfirmed.take();
        if was_online || unconfirmed.is_some() {
            self.judge_loss(now, reason, unconfirmed);
        }
    }
}
