//! The vocabulary shared by the probe, the monitor and the publishers.
//!
//! These are plain data types with no behaviour beyond conversions; they
//! must not do I/O. Numeric values of [`OfflineReason`] are part of the
//! public D-Bus contract and never change.

use serde::Serialize;

/// Why fail2ban is not considered online, as published in `OfflineReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineReason {
    /// Online: there is no reason.
    None,
    /// The daemon has not finished its first probe yet.
    NotProbedYet,
    /// The socket file does not exist (fail2ban stopped cleanly or never ran).
    SocketMissing,
    /// The socket file exists but nobody listens (fail2ban was killed or crashed).
    ConnectionRefused,
    /// The socket exists but this process may not connect to it.
    PermissionDenied,
    /// fail2ban did not answer within the probe's deadline.
    Timeout,
    /// fail2ban answered something unparseable or unexpected.
    ProtocolError,
    /// fail2ban answered `["SHUTDOWN"]`: it is stopping.
    ShuttingDown,
    /// fail2ban closed or reset a connection in the middle of a conversation.
    ConnectionLost,
    /// fail2ban's service is stopped while its `.socket` unit listens
    /// (socket activation): the daemon does not connect, since a connection
    /// would start fail2ban.
    Inactive,
    /// fail2ban's service is in the failed state (including
    /// `start-limit-hit`).
    UnitFailed,
    /// fail2ban's `.socket` unit has failed: nothing can connect.
    SocketFailed,
}

impl OfflineReason {
    /// All values, in contract order.
    pub const ALL: [OfflineReason; 12] = [
        OfflineReason::None,
        OfflineReason::NotProbedYet,
        OfflineReason::SocketMissing,
        OfflineReason::ConnectionRefused,
        OfflineReason::PermissionDenied,
        OfflineReason::Timeout,
        OfflineReason::ProtocolError,
        OfflineReason::ShuttingDown,
        OfflineReason::ConnectionLost,
        OfflineReason::Inactive,
        OfflineReason::UnitFailed,
        OfflineReason::SocketFailed,
    ];

    /// The contract's numeric value (`u` on the bus).
    pub fn code(self) -> u32 {
        match self {
            OfflineReason::None => 0,
            OfflineReason::NotProbedYet => 1,
            OfflineReason::SocketMissing => 2,
            OfflineReason::ConnectionRefused => 3,
            OfflineReason::PermissionDenied => 4,
            OfflineReason::Timeout => 5,
            OfflineReason::ProtocolError => 6,
            OfflineReason::ShuttingDown => 7,
            OfflineReason::ConnectionLost => 8,
            OfflineReason::Inactive => 9,
            OfflineReason::UnitFailed => 10,
            OfflineReason::SocketFailed => 11,
        }
    }

    /// The value for a contract number, if it is one.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// A stable lower-case identifier, used in JSON output and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineReason::None => "none",
            OfflineReason::NotProbedYet => "not_probed_yet",
            OfflineReason::SocketMissing => "socket_missing",
            OfflineReason::ConnectionRefused => "connection_refused",
            OfflineReason::PermissionDenied => "permission_denied",
            OfflineReason::Timeout => "timeout",
            OfflineReason::ProtocolError => "protocol_error",
            OfflineReason::ShuttingDown => "shutting_down",
            OfflineReason::ConnectionLost => "connection_lost",
            OfflineReason::Inactive => "inactive",
            OfflineReason::UnitFailed => "unit_failed",
            OfflineReason::SocketFailed => "socket_failed",
        }
    }
}

impl std::fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one jail, as fail2ban reports them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct JailStats {
    /// The jail's name.
    pub name: String,
    /// Addresses with failures inside the jail's find time.
    pub currently_failed: u32,
    /// Failures seen since the jail started.
    pub total_failed: u32,
    /// Addresses banned right now.
    pub currently_banned: u32,
    /// Bans since the jail started.
    pub total_banned: u32,
}

/// What a successful probe learned about fail2ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    /// fail2ban's version string, for instance `1.0.2`.
    pub version: String,
    /// Every running jail, sorted by name.
    pub jails: Vec<JailStats>,
}

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
    fn codes_round_trip_and_match_the_contract() {
        for (i, reason) in OfflineReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.code() as usize, i);
            assert_eq!(OfflineReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(OfflineReason::from_code(12), None);
        assert_eq!(OfflineReason::SocketFailed.code(), 11);
        assert_eq!(OfflineReason::ConnectionLost.code(), 8);
    }

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
