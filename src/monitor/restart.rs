//! Restarts are not crashes (see the D-Bus contract, "A restart is not a
//! crash"): a clean stop opens the restart grace and the record waits for
//! its verdict; an unclean loss is recorded at once. Two pieces of state
//! carry this: the [`RestartGrace`] opened by a clean stop, and the
//! [`Settle`]ment of a freshly started server's jail list.

use std::time::{Duration, Instant};

use super::{Cause, Monitor, Now};
use crate::health::OfflineReason;

/// How long a restart grace waits, at most, for systemd to finish stopping
/// fail2ban (systemd's own stop timeout is 90 s by default).
const MAX_STOP_WAIT: Duration = Duration::from_secs(600);

/// Whether a way of going offline is one fail2ban or systemd chose: a
/// graceful stop removes the socket or answers `SHUTDOWN`, and a stopped
/// service under socket activation is inactive.
pub(super) fn is_clean_stop(reason: OfflineReason) -> bool {
    matches!(
        reason,
        OfflineReason::SocketMissing | OfflineReason::ShuttingDown | OfflineReason::Inactive
    )
}

/// A clean stop happened inside an activation's window; its verdict waits
/// until fail2ban is back with its jails settled, or the grace ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RestartGrace {
    /// When the clean stop was seen.
    pub opened: Instant,
    /// When the grace ends; fail2ban still down then is a failure.
    pub until: Instant,
    /// fail2ban answered again since the stop: going down once more before
    /// the verdict is a failure.
    pub came_back: bool,
    /// The activation it was opened for (its monotonic time): a return
    /// judges that activation only, never one registered after the stop.
    pub activation_at: Instant,
}

/// How long a new server's jail list must hold still, at least, before
/// the jails are judged: jails appear some tens of milliseconds after the
/// server first answers.
const SETTLE_MIN: Duration = Duration::from_millis(500);

/// Judge at the latest this long after the server came back, so that a
/// list that keeps changing is judged all the same.
const SETTLE_MAX: Duration = Duration::from_secs(5);

/// How often to probe while the list settles.
pub(super) const SETTLE_EVERY: Duration = Duration::from_millis(250);

/// A server that came back and whose jail list is not judged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settle {
    since: Instant,
    previous: Vec<String>,
}

impl Settle {
    /// Starts settling at `now`, with the jails the first answer listed.
    pub fn new(now: Instant, jails: Vec<String>) -> Self {
        Self {
            since: now,
            previous: jails,
        }
    }

    /// Feeds the jails of a later probe; true once the list has held still
    /// long enough to be judged.
    pub fn settled(&mut self, now: Instant, jails: Vec<String>) -> bool {
        let elapsed = now.saturating_duration_since(self.since);
        let still = jails == self.previous;
        self.previous = jails;
        (still && elapsed >= SETTLE_MIN) || elapsed >= SETTLE_MAX
    }
}

impl Monitor {
    /// A loss of fail2ban: a clean one opens the restart grace, an unclean
    /// one is a failure at once, a refusal or a timeout after being asked
    /// once more (`unconfirmed`: when and why the first was seen).
    pub(super) fn judge_loss(
        &mut self,
        now: Now,
        reason: OfflineReason,
        unconfirmed: Option<(Instant, OfflineReason)>,
    ) {
        let ask_again = matches!(
            reason,
            OfflineReason::ConnectionRefused | OfflineReason::Timeout
        );
        match &self.grace {
            // Down again before the grace's verdict.
            Some(g) if g.came_back => self.failure(now, Cause::WentOffline(reason)),
            // Still the same stop.
            Some(_) => {}
            None if is_clean_stop(reason) => self.open_grace(now),
            None if ask_again && unconfirmed.is_none() => {
                if self.blamable(now).is_some() {
                    self.unconfirmed = Some((now.mono, reason));
                }
            }
            None => {
                // Recorded as first seen, judged by the window then.
                let (seen, first) = unconfirmed.unwrap_or((now.mono, reason));
                self.failure_seen(now, seen, Cause::WentOffline(first));
            }
        }
    }

    /// A new clean stop (another restart) while the return from the last
    /// one is not judged yet: that return is judged by the jails it showed,
    /// and the new stop gets a grace of its own.
    pub(super) fn stopped_after_return(&mut self, now: Now) {
        if self.grace.as_ref().is_some_and(|g| g.came_back) {
            let grace = self.grace.take();
            // A list still settling says nothing yet; the next return is
            // judged instead.
            if self.settle.take().is_none() {
                self.judge_return(now, grace);
            }
        }
    }

    /// A clean stop inside an activation's window: the verdict waits.
    pub(super) fn open_grace(&mut self, now: Now) {
        if self.grace.is_none()
            && let Some(window) = self.blamable(now)
        {
            self.grace = Some(RestartGrace {
                opened: now.mono,
                until: now.mono + self.timing.restart_grace,
                came_back: false,
                activation_at: window.opened,
            });
        }
    }

    /// The restart grace is over before fail2ban came back settled. Judged
    /// as at the grace's end, however late the caller noticed.
    pub(super) fn grace_ended(&mut self, now: Now) {
        // systemd is still stopping fail2ban (1.1 takes about a second per
        // jail): the grace counts from when the stop is over, and systemd
        // bounds the stop itself.
        let grace = self.timing.restart_grace;
        let stopping = self.unit_stopping();
        if let Some(g) = self
            .grace
            .as_mut()
            .filter(|g| stopping && now.mono < g.opened + MAX_STOP_WAIT)
        {
            g.until = now.mono + grace.max(Duration::from_secs(1));
            return;
        }
        let now = match &self.grace {
            Some(g) if g.until < now.mono => Now {
                mono: g.until,
                wall: now.wall - (now.mono - g.until),
            },
            _ => now,
        };
        if self.snapshot.online {
            let grace = self.grace.take();
            self.settle = None;
            self.judge_return(now, grace);
        } else {
            self.failure(now, Cause::WentOffline(self.snapshot.offline_reason));
        }
    }

    /// The verdict on a restart: fail2ban is back, its jails settled.
    /// An activation registered after the stop is not judged by this
    /// return: its jail had no chance to start yet, and its own rules (the
    /// jail start grace, then the close watch) judge it.
    pub(super) fn judge_return(&mut self, now: Now, grace: Option<RestartGrace>) {
        if let Some(window) = self
            .window
            .clone()
            .filter(|w| grace.as_ref().is_none_or(|g| g.activation_at == w.opened))
        {
            self.judge_jails(now, &window);
        }
    }
}
