//! The two pieces of state that keep a restart from reading as a crash:
//! the restart grace opened by a clean stop, and the settling of a freshly
//! started server's jail list.

use std::time::{Duration, Instant};

/// A clean stop happened inside an activation's window; its verdict waits
/// until fail2ban is back with its jails settled, or the grace ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grace {
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
