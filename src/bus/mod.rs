//! The D-Bus face of the daemon: the public contract
//! (`org.fail2ban_healthd.Health1`, see `docs/dbus-api.md`).
//!
//! Layout:
//! - this file: the names (bus name, path, interface, error prefix);
//! - [`proxy`]: the client proxy, for applets, scripts and the client;
//! - [`values`]: snapshots and domain types as bus values;
//! - [`error`]: the contract's error names;
//! - [`auth`]: who may call the managing methods;
//! - [`backend`]: what the interface needs from whoever runs it;
//! - [`interface`]: the served object, over a [`backend::Backend`].
//!
//! It depends on the domain ([`crate::monitor`], [`crate::rollback`],
//! [`crate::health`]) and never on the daemon: the daemon implements
//! [`backend::Backend`], and a test can serve the interface over one of
//! its own. It holds no application state: properties are read from the
//! backend's latest snapshot.

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
