//! fail2ban-healthd: a health and crash-recovery companion for fail2ban.
//!
//! Layout:
//! - [`health`]: shared vocabulary (`OfflineReason`, `JailStats`, `ServerStatus`);
//! - [`fail2ban`]: the control-socket codec, client and probe;
//! - [`monitor`]: the pure crash-attribution state machine;
//! - [`cli`]: the command line and its subcommands.

pub mod cli;
pub mod fail2ban;
pub mod health;
pub mod monitor;
