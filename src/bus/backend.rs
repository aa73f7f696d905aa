//! What the served interface needs from whoever runs it: the latest
//! snapshot, and one call per method. The daemon implements it over its
//! owner task; a test implements it in memory.
//!
//! The interface checks the caller and the arguments, calls the backend,
//! and turns its domain answers into the contract's values and errors. A
//! backend never sees a D-Bus error name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use zbus::Connection;

use crate::fail2ban::check::CheckReport;
use crate::monitor::{Refusal, Snapshot, Trial};
use crate::rollback::{Outcome, RollbackError, TryError};

/// A boxed future, so that the trait can be used as `dyn Backend`.
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer of a call that may find the daemon stopping (`None`).
pub type Answer<T> = Option<Result<T, Refusal>>;

/// The daemon as the interface sees it. Every call that waits returns
/// `None` (or a `ShuttingDown` error) once the daemon is stopping.
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// The latest snapshot; never waits for a probe.
    fn snapshot(&self) -> Arc<Snapshot>;

    /// Registers an activation of a valid jail name; answers with its time.
    fn register_activation(&self, jail: String) -> Reply<'_, Option<DateTime<Utc>>>;

    /// Clears the recovery record.
    fn dismiss_recovery(&self) -> Reply<'_, Answer<()>>;

    /// Probes now; answers with `online` once the snapshot reflects it.
    fn probe(&self) -> Reply<'_, Option<bool>>;

    /// Rolls the record's jail back; `uid` is the caller, for the journal.
    /// `conn` is the connection the call came in on (systemd is asked
    /// through it).
    fn rollback<'a>(
        &'a self,
        conn: &'a Connection,
        uid: u32,
    ) -> Reply<'a, Result<Outcome, RollbackError>>;

    /// fail2ban's own checks for a valid jail name, as if it were enabled.
    fn check<'a>(&'a self, jail: &'a str) -> Reply<'a, CheckReport>;

    /// Starts a trial of a valid jail name for `timeout`; answers with its
    /// start.
    fn try_jail<'a>(
        &'a self,
        conn: &'a Connection,
        jail: &'a str,
        timeout: Duration,
        uid: u32,
    ) -> Reply<'a, Result<DateTime<Utc>, TryError>>;

    /// Ends the trial, keeping its jail; answers with the trial ended.
    fn confirm_trial(&self) -> Reply<'_, Answer<Option<Trial>>>;

    /// Ends the trial, rolling its jail back; answers with the trial.
    fn abort_trial(&self) -> Reply<'_, Answer<Option<Trial>>>;
}
