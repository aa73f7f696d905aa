//! Prometheus text format (version 0.0.4) of a snapshot, for
//! node_exporter's textfile collector. Pure: the daemon writes the text
//! atomically after every probe.

use std::fmt::Write as _;
use std::time::Duration;

use crate::health::JailStats;
use crate::monitor::Snapshot;

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn per_jail(
    out: &mut String,
    jails: &[JailStats],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&JailStats) -> u32,
) {
    header(out, name, kind, help);
    for j in jails {
        let _ = writeln!(out, "{name}{{jail=\"{}\"}} {}", label(&j.name), value(j));
    }
}

/// The metrics for `s`; `probe_duration` is how long the latest probe took.
pub fn render(s: &Snapshot, probe_duration: Option<Duration>) -> String {
    let mut out = String::with_capacity(1024 + 200 * s.jails.len());
    server(&mut out, s);
    jail_counters(&mut out, &s.jails);
    offline_reason(&mut out, s);
    pending_recovery(&mut out, s);
    probe_timing(&mut out, s, probe_duration);
    out
}

/// Whether fail2ban answers, and how many jails it runs.
fn server(out: &mut String, s: &Snapshot) {
    header(
        out,
        "fail2ban_up",
        "gauge",
        "Whether fail2ban answered the latest probe.",
    );
    let _ = writeln!(out, "fail2ban_up {}", u8::from(s.online));
    header(
        out,
        "fail2ban_jails",
        "gauge",
        "Number of jails fail2ban reports.",
    );
    let _ = writeln!(out, "fail2ban_jails {}", s.jails.len());
}

/// Each jail's failure and ban counters, as fail2ban reports them.
fn jail_counters(out: &mut String, jails: &[JailStats]) {
    per_jail(
        out,
        jails,
        "fail2ban_jail_failed_current",
        "gauge",
        "Addresses with failures inside the jail's find time.",
        |j| j.currently_failed,
    );
    per_jail(
        out,
        jails,
        "fail2ban_jail_failed_total",
        "counter",
        "Failures seen since the jail started.",
        |j| j.total_failed,
    );
    per_jail(
        out,
        jails,
        "fail2ban_jail_banned_current",
        "gauge",
        "Addresses banned right now.",
        |j| j.currently_banned,
    );
    per_jail(
        out,
        jails,
        "fail2ban_jail_banned_total",
        "counter",
        "Bans since the jail started.",
        |j| j.total_banned,
    );
}

/// The daemon's `OfflineReason`.
fn offline_reason(out: &mut String, s: &Snapshot) {
    header(
        out,
        "fail2ban_healthd_offline_reason",
        "gauge",
        "Why fail2ban is offline, as the D-Bus OfflineReason (0 while online).",
    );
    let _ = writeln!(
        out,
        "fail2ban_healthd_offline_reason {}",
        s.offline_reason.code()
    );
}

/// Whether a failure attributed to an activation has not cleared.
fn pending_recovery(out: &mut String, s: &Snapshot) {
    header(
        out,
        "fail2ban_healthd_pending_recovery",
        "gauge",
        "1 while a failure attributed to an activation (label jail) has not cleared.",
    );
    // One label set whatever happens, so a series does not come and go:
    // the jail is empty while there is no record.
    let (jail, pending) = s
        .pending_recovery
        .as_ref()
        .map_or(("", false), |r| (r.jail_name.as_str(), !r.recovered()));
    let _ = writeln!(
        out,
        "fail2ban_healthd_pending_recovery{{jail=\"{}\"}} {}",
        label(jail),
        u8::from(pending)
    );
}

/// How long the latest probe took, and when it finished.
fn probe_timing(out: &mut String, s: &Snapshot, probe_duration: Option<Duration>) {
    header(
        out,
        "fail2ban_healthd_probe_duration_seconds",
        "gauge",
        "How long the latest probe took.",
    );
    let _ = writeln!(
        out,
        "fail2ban_healthd_probe_duration_seconds {}",
        probe_duration.unwrap_or_default().as_secs_f64()
    );
    header(
        out,
        "fail2ban_healthd_last_probe_timestamp_seconds",
        "gauge",
        "When the latest probe finished, in seconds since the Unix epoch.",
    );
    let last = s
        .last_probe
        .map_or(0.0, |t| t.timestamp_micros() as f64 / 1e6);
    let _ = writeln!(out, "fail2ban_healthd_last_probe_timestamp_seconds {last}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn offline_without_record() {
        let text = render(&Snapshot::default(), None);
        assert!(text.contains("\nfail2ban_up 0\n"), "{text}");
        assert!(text.contains("\nfail2ban_healthd_offline_reason 1\n"));
        assert!(text.contains("\nfail2ban_healthd_pending_recovery{jail=\"\"} 0\n"));
        assert!(text.contains("\nfail2ban_healthd_last_probe_timestamp_seconds 0\n"));
        assert!(text.ends_with('\n'));
    }
}
