//! Time as the monitor sees it: the present moment, handed in by the
//! caller with every input, and the timing settings.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The present moment, as the caller read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: windows and schedules are measured on it.
    pub mono: Instant,
    /// Wall-clock time: what timestamps show.
    pub wall: DateTime<Utc>,
}

impl Now {
    /// The same moment `d` later on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

/// The monitor's timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between the end of one probe and the start of the next.
    pub probe_interval: Duration,
    /// How long after an activation a failure is attributed to it: the
    /// length of its activation window.
    pub crash_window: Duration,
    /// How long a newly activated jail may take to appear.
    pub jail_start_grace: Duration,
    /// Time between probes while an activation window is open (the close
    /// watch; named after the `watch_interval` setting).
    pub watch_interval: Duration,
    /// After a clean stop (a restart), how long fail2ban may take to come
    /// back healthy before the stop counts as a failure.
    pub restart_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(30),
            crash_window: Duration::from_secs(60),
            jail_start_grace: Duration::from_secs(5),
            watch_interval: Duration::from_secs(1),
            restart_grace: Duration::from_secs(15),
        }
    }
}
