//! systemd's notify protocol. Every call is a no-op without
//! `NOTIFY_SOCKET`; failures are logged, never fatal.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::monitor::Snapshot;
use crate::text::clean;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify_failed");
    }
}

/// READY=1: the name is owned and the service answers.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// STOPPING=1.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// WATCHDOG=1.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// STATUS=, the one-line summary `systemctl status` shows.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, when it is set
/// and `WATCHDOG_PID` is unset or ours (as `sd_watchdog_enabled(3)` reads
/// them).
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// The status line for a snapshot (one line, every text from fail2ban or
/// the state file cleaned of control characters), e.g. `fail2ban 1.0.2 online, 2 jails`
/// or `fail2ban offline: connection refused`.
pub fn status_line(s: &Snapshot) -> String {
    let mut line = if s.online {
        format!(
            "fail2ban {} online, {} jail{}",
            clean(&s.version, 64),
            s.jails.len(),
            if s.jails.len() == 1 { "" } else { "s" }
        )
    } else if s.last_probe.is_none() {
        "waiting for the first probe of fail2ban".to_owned()
    } else {
        format!(
            "fail2ban offline: {}",
            s.offline_reason.as_str().replace('_', " ")
        )
    };
    if let Some(r) = s.pending_recovery.as_ref().filter(|r| !r.recovered()) {
        line.push_str(&format!(
            "; pending recovery for jail {}",
            clean(&r.jail_name, 128)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{JailStats, OfflineReason};

    #[test]
    fn the_status_line_is_one_line_whatever_fail2ban_says() {
        let mut s = Snapshot {
            online: true,
            offline_reason: OfflineReason::None,
            version: "1.0.2\0\nMAINPID=1".into(),
            ..Snapshot::default()
        };
        s.jails.push(JailStats {
            name: "sshd".into(),
            currently_failed: 0,
            total_failed: 0,
            currently_banned: 0,
            total_banned: 0,
        });
        let line = status_line(&s);
        assert!(crate::text::printable(&line), "{line:?}");
        assert!(
            !line.contains('\n') && line.starts_with("fail2ban 1.0.2"),
            "{line:?}"
        );
        s.version = "v".repeat(10_000);
        assert!(status_line(&s).len() < 200);
    }
}
