//! The command-line client: `status`, `watch`, `activate`, `dismiss` and
//! `rollback`, all over D-Bus through [`Health1Proxy`](crate::bus::proxy::Health1Proxy).
//!
//! Owns what people and scripts see of a running daemon: short aligned
//! text, stable JSON (documented in the README), one-line errors and exit
//! statuses: 0 done, 1 refused by the daemon (or, for `status`, fail2ban
//! offline or a recovery pending), 2 the daemon could not be asked.
//!
//! Layout:
//! - `connect`: which bus, the proxy, managing calls, one-line failures;
//! - `values`: bus values as printed: JSON, times, record fields, names;
//! - `status`, `watch`, `manage` (`activate`, `dismiss`, `rollback`) and
//!   `trial` (`check`, `try`, `confirm`, `abort`): one command each;

mod connect;
mod manage;
mod status;
pub mod table;
pub mod trial;
mod values;
mod watch;

pub use connect::{BusArgs, Failure, exit_code};
pub use manage::{activate, dismiss, rollback};
pub use status::status;
pub use values::to_json;
pub use watch::watch;
