//! The monitor's timing: `probe_interval`, `crash_window`,
//! `jail_start_grace`, `watch_interval`, `restart_grace`.

use std::time::Duration;

use super::values::duration;
use super::{Error, Settings, bad};
use crate::monitor::Timing;

/// The timing, with the grace shorter than the window.
pub(super) fn timing(raw: &Settings) -> Result<Timing, Error> {
    let ms = Duration::from_millis;
    let day = Duration::from_secs(86_400);
    let timing = Timing {
        probe_interval: duration("probe_interval", &raw.probe_interval, ms(100), day)?,
        crash_window: duration("crash_window", &raw.crash_window, ms(100), day)?,
        jail_start_grace: duration(
            "jail_start_grace",
            &raw.jail_start_grace,
            Duration::ZERO,
            day,
        )?,
        watch_interval: duration("watch_interval", &raw.watch_interval, ms(100), day)?,
        restart_grace: duration(
            "restart_grace",
            &raw.restart_grace,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
    };
    if timing.jail_start_grace >= timing.crash_window {
        return Err(bad(
            "jail_start_grace",
            "must be shorter than crash_window, or a missing jail could never be noticed",
        ));
    }
    Ok(timing)
}
