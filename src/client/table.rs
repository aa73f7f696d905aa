//! Tables printed for people: the per-jail counters that `probe` and
//! `status` show.

use std::fmt::Write as _;

use crate::fail2ban::codec;
use crate::health::{JailStats, ServerStatus};

/// The longest jail name printed, in bytes (the contract allows 128).
const MAX_NAME_TEXT: usize = 128;

/// The readable form of a probe's result: a headline, then one aligned
/// row per jail.
pub fn render_table(status: &ServerStatus, socket: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fail2ban {} is online with {} jail{} (socket {socket})",
        crate::text::clean(&status.version, codec::MAX_VERSION),
        status.jails.len(),
        if status.jails.len() == 1 { "" } else { "s" }
    );
    out.push_str(&jail_rows(&status.jails));
    out
}

/// The per-jail table: a header and one aligned row per jail; empty for
/// no jails.
pub fn jail_rows(jails: &[JailStats]) -> String {
    let mut out = String::new();
    if jails.is_empty() {
        return out;
    }
    let headers = ["JAIL", "FAILED", "TOTAL FAILED", "BANNED", "TOTAL BANNED"];
    // Names come from fail2ban or the bus: printed without control
    // characters whatever they hold.
    let names: Vec<_> = jails
        .iter()
        .map(|j| crate::text::clean(&j.name, MAX_NAME_TEXT))
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .chain([headers[0].len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{:<width$}  {:>6}  {:>12}  {:>6}  {:>12}",
        headers[0], headers[1], headers[2], headers[3], headers[4]
    );
    for (j, name) in jails.iter().zip(&names) {
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>12}  {:>6}  {:>12}",
            name, j.currently_failed, j.total_failed, j.currently_banned, j.total_banned
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_prints_no_control_character() {
        let status = ServerStatus {
            version: "1.0\u{7}".into(),
            jails: vec![JailStats {
                name: "a\nb\u{1b}[2J".into(),
                currently_failed: 0,
                total_failed: 0,
                currently_banned: 0,
                total_banned: 0,
            }],
        };
        let table = render_table(&status, "/s");
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(table.lines().all(crate::text::printable), "{table:?}");
    }

    #[test]
    fn table_is_aligned() {
        let status = ServerStatus {
            version: "1.0.2".into(),
            jails: vec![
                JailStats {
                    name: "a".into(),
                    currently_failed: 1,
                    total_failed: 22,
                    currently_banned: 3,
                    total_banned: 4444,
                },
                JailStats {
                    name: "longer-name".into(),
                    currently_failed: 0,
                    total_failed: 0,
                    currently_banned: 0,
                    total_banned: 0,
                },
            ],
        };
        let table = render_table(&status, "/s");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("1.0.2") && lines[0].contains("2 jails"));
        assert_eq!(lines[1].len(), lines[2].len());
        assert_eq!(lines[2].len(), lines[3].len());
        assert!(lines[2].starts_with("a ") && lines[2].ends_with(" 4444"));
    }
}
