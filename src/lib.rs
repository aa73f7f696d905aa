//! fail2ban-healthd: a health and crash-recovery companion for fail2ban.
//!
//! The library is what an applet or a script needs to talk to a running
//! daemon: the client proxy and the bus names ([`bus`]), the bus values and
//! the domain types they come from ([`health`], [`monitor`], [`rollback`]),
//! the control-socket client ([`fail2ban`]) and the command-line client's
//! helpers ([`client`]). The daemon's own parts are compiled in for its
//! binary and its tests, and hidden from these docs.
//!
//! # Layout
//!
//! Dependencies point down this list; `tests/architecture.rs` keeps the
//! module graph free of cycles.
//!
//! - [`health`], [`text`], `atomic`: the bottom: shared vocabulary
//!   (`OfflineReason`, `JailStats`, the jail-name rule), untrusted text made
//!   safe to print, atomic file replacement;
//! - [`fail2ban`]: the control-socket codec, client and probe, and
//!   fail2ban's own checks of a jail;
//! - [`monitor`]: the pure crash-attribution state machine (no clock, no
//!   I/O): inputs in, snapshots and events out;
//! - [`rollback`]: what a rollback and a trial are: the daemon's drop-in
//!   text, outcomes and errors (pure);
//! - `state`, `config`, `systemd`, [`metrics`]: the state file, validated
//!   settings, systemd's API, the Prometheus text of a snapshot;
//! - [`bus`]: the public contract: names, values, errors, who may call,
//!   the client proxy, and the served interface in front of a
//!   [`bus::backend::Backend`];
//! - [`client`]: the command-line client over the proxy;
//! - `daemon`: `run()`: the owner task, its publishers and watchers, the
//!   rollbacks and trials, shutdown; implements the backend;
//! - `cli`, `logging`: the command line and the logs of the binary.
//!
//! # Reading the daemon's state
//!
//! ```no_run
//! use fail2ban_healthd::bus::proxy::Health1Proxy;
//!
//! # async fn status() -> zbus::Result<()> {
//! let conn = zbus::Connection::system().await?;
//! let health = Health1Proxy::new(&conn).await?;
//! if health.online().await? {
//!     println!("fail2ban {} runs {} jails", health.version().await?, health.active_jails().await?);
//! }
//! let record = health.pending_recovery().await?;
//! if !record.is_empty() {
//!     let jail = String::try_from(record["JailName"].try_clone()?)?;
//!     println!("a failure is attributed to jail {jail}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! What `PendingRecovery` carries is built by [`bus::values::record`] from
//! the monitor's [`monitor::RecoveryRecord`]; a client reads it back key by
//! key:
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use fail2ban_healthd::bus::values;
//! use fail2ban_healthd::monitor::{Cause, RecoveryRecord};
//!
//! let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
//! let record = RecoveryRecord {
//!     jail_name: "nginx-bad".into(),
//!     activated_at: at,
//!     detected_at: at,
//!     recovered_at: None,
//!     cause: Cause::JailNotRunning,
//!     suspect_jails: vec!["nginx-bad".into()],
//!     unit_exit: None,
//!     rolled_back: false,
//!     auto_rolled_back: false,
//!     ran_before: false,
//! };
//! let dict = values::record(Some(&record));
//! let jail = String::try_from(dict["JailName"].try_clone().unwrap()).unwrap();
//! let cause = u32::try_from(dict["Cause"].try_clone().unwrap()).unwrap();
//! let recovered = bool::try_from(dict["Recovered"].try_clone().unwrap()).unwrap();
//! assert_eq!((jail.as_str(), cause, recovered), ("nginx-bad", 2, false));
//! assert!(values::record(None).is_empty());
//! ```

pub mod bus;
pub mod client;
pub mod fail2ban;
pub mod health;
pub mod metrics;
pub mod monitor;
pub mod rollback;
pub mod text;

// The daemon's own parts: public for its binary (`src/main.rs`) and for
// the integration tests, not for applets.
#[doc(hidden)]
pub mod atomic;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod daemon;
#[doc(hidden)]
pub mod logging;
#[doc(hidden)]
pub mod state;
#[doc(hidden)]
pub mod systemd;

// The Rust examples in the user and API documents are compiled (and run,
// unless marked `no_run`) by `cargo test --doc` like the ones above.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
#[cfg(doctest)]
#[doc = include_str!("../docs/dbus-api.md")]
struct DbusApiExamples;
