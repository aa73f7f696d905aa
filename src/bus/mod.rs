//! The D-Bus face of the daemon: names, the served interface, who may call
//! it, its errors, the conversion of snapshots into bus values, and a
//! client proxy.
//!
//! Owns the public contract (`org.fail2ban_healthd.Health1`). It reads
//! state only from snapshots and sends commands to the owner task; it never
//! holds application state of its own.

pub mod auth;
pub mod backend;
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
