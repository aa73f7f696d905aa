//! The D-Bus face of the daemon: names, the served interface, who may call
//! it, its errors, the conversion of snapshots into bus values, and a
//! client proxy.
//!
//! Owns the public contract (`org.fail2ban_healthd.Health1`). It reads
//! state only from snapshots and sends commands to the owner task; it never
//! holds application state of its own.

pub mod auth;
pub mod error;
pub mod interface;
pub mod proxy;
pub mod values;

/// The well-known bus name.
pub const NAME: &str = "org.fail2ban_healthd.Health1";
/// The object path.
pub const PATH: &str = "/org/fail2ban_healthd/Health1";
/// The interface name.
pub const INTERFACE: &str = "org.fail2ban_healthd.Health1";
/// The prefix of the interface's error names.
pub const ERROR_PREFIX: &str = "org.fail2ban_healthd.Health1.Error";

/// Checks a jail name as the contract says: 1 to 128 bytes of
/// `A-Z a-z 0-9 . _ @ + -`, not starting with `.` or `-`.
pub fn valid_jail_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=128).contains(&bytes.len())
        && !matches!(bytes[0], b'.' | b'-')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jail_names_follow_the_contract() {
        for ok in [
            "sshd",
            "nginx-http-auth",
            "a",
            "x.y_z@w+v-1",
            &"a".repeat(128),
        ] {
            assert!(valid_jail_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            ".hidden",
            "-flag",
            "../x",
            "a b",
            "tab\there",
            "ctl\u{1}",
            "jail/1",
            "é",
            &"a".repeat(129),
            &"b".repeat(200),
        ] {
            assert!(!valid_jail_name(bad), "{bad:?}");
        }
    }
}
