//! fail2ban-healthd: a health and crash-recovery companion for fail2ban.
//!
//! Layout:
//! - [`health`]: shared vocabulary (`OfflineReason`, `JailStats`, `ServerStatus`);
//! - [`fail2ban`]: the control-socket codec, client and probe;
//! - [`monitor`]: the pure crash-attribution state machine;
//! - [`config`]: settings from the file and flags, validated;
//! - [`state`]: the state file that keeps activations and records across restarts;
//! - [`systemd`]: systemd's API as the daemon and the `probe` command use it;
//! - [`text`]: untrusted text made safe for logs, the terminal and systemd;
//! - [`atomic`]: replacing a file atomically (state, drop-in, metrics);
//! - [`metrics`]: Prometheus text format of a snapshot;
//! - [`bus`], [`daemon`], [`logging`]: the D-Bus face, the running daemon, its logs;
//! - [`cli`]: the command line and its subcommands;
//! - [`client`]: the D-Bus client subcommands (`status`, `watch`, ...).

pub mod atomic;
pub mod bus;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod fail2ban;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod rollback;
pub mod state;
pub mod systemd;
pub mod text;
