//! Text as the applet shows it: text from the bus cleaned, lists capped,
//! codes, times and durations in words. Pure.

use chrono::{DateTime, Local, Utc};

use fail2ban_healthd::health::OfflineReason;

/// The longest text from the bus shown, in bytes.
const MAX_TEXT: usize = 256;
/// At most this many names in one line of suspects or vanished jails.
const MAX_NAMES: usize = 8;

/// Text from the bus as shown: control and invisible characters escaped,
/// capped.
pub fn clean(s: &str) -> String {
    fail2ban_healthd::text::clean(s, MAX_TEXT).into_owned()
}

/// A failure's cause code in words, without the jail, for when the record
/// is not at hand.
pub fn cause_code_words(cause: u32) -> String {
    match cause {
        1 => "fail2ban went offline".into(),
        2 => "the jail did not run while fail2ban did".into(),
        3 => "jails that ran before disappeared".into(),
        other => format!("unknown cause {other}"),
    }
}

/// A list of names, at most [`MAX_NAMES`] of them.
pub(super) fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let mut s = names
        .iter()
        .take(MAX_NAMES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_NAMES {
        s.push_str(&format!(" and {} more", names.len() - MAX_NAMES));
    }
    s
}

/// An `OfflineReason` in words.
pub fn reason_words(code: u32) -> &'static str {
    match OfflineReason::from_code(code) {
        Some(OfflineReason::None) => "online",
        Some(OfflineReason::NotProbedYet) => "not probed yet",
        Some(OfflineReason::SocketMissing) => "its socket is missing",
        Some(OfflineReason::ConnectionRefused) => "connection refused",
        Some(OfflineReason::PermissionDenied) => "permission denied on its socket",
        Some(OfflineReason::Timeout) => "it did not answer in time",
        Some(OfflineReason::ProtocolError) => "it answered something unreadable",
        Some(OfflineReason::ShuttingDown) => "it is shutting down",
        Some(OfflineReason::ConnectionLost) => "it dropped the connection",
        Some(OfflineReason::Inactive) => "stopped; its socket unit listens",
        Some(OfflineReason::UnitFailed) => "its service failed",
        Some(OfflineReason::SocketFailed) => "its socket unit failed",
        None => "reason unknown",
    }
}

/// A time (µs) as local wall-clock time: `HH:MM` within 12 hours of
/// `now`, with the date beyond.
pub fn clock(usec: u64, now: DateTime<Utc>) -> String {
    let Some(t) = i64::try_from(usec)
        .ok()
        .filter(|&u| u > 0)
        .and_then(DateTime::<Utc>::from_timestamp_micros)
    else {
        return "an unknown time".into();
    };
    let local = t.with_timezone(&Local);
    if (t - now).num_hours().abs() < 12 {
        local.format("%H:%M").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// A time (µs) as local wall-clock time and how long ago.
pub fn when(usec: u64, now: DateTime<Utc>) -> String {
    let Some(t) = i64::try_from(usec)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
    else {
        return "at an unknown time".into();
    };
    let local = t.with_timezone(&Local);
    let clock = if (now - t).num_hours() < 20 {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    };
    format!("at {clock} ({})", ago(usec, now))
}

/// How long ago a time (µs) was, in words.
pub fn ago(usec: u64, now: DateTime<Utc>) -> String {
    let now_us = u64::try_from(now.timestamp_micros()).unwrap_or(0);
    if usec > now_us {
        return "just now".into();
    }
    format!("{} ago", span(now_us - usec))
}

/// A duration (µs) in words, rounded down.
pub fn span(usec: u64) -> String {
    let s = usec / 1_000_000;
    match s {
        0 => "under a second".into(),
        1..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}
