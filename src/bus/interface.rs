//! The served object: `org.fail2ban_healthd.Health1` at
//! `/org/fail2ban_healthd/Health1`.
//!
//! Property getters read the latest snapshot, so they answer at once even
//! while a probe hangs. Methods check the caller (see [`super::auth`]) and
//! the arguments, call the [`Backend`], and map its domain answers to the
//! contract's values and errors. Signals are emitted by the daemon's
//! publisher through the associated functions declared here.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedVariant};

use super::auth::{Authorizer, Right};
use super::backend::Backend;
use super::error::HealthError;
use super::values;
use crate::health::valid_jail_name;
use crate::monitor::{Refusal, Trial};
use crate::rollback::{RollbackError, TryError, trial_timeout};

/// Values fixed for the daemon's lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constants {
    /// `ProbeIntervalUSec`.
    pub probe_interval_usec: u64,
    /// `CrashWindowUSec`.
    pub crash_window_usec: u64,
    /// `SocketPath`.
    pub socket_path: String,
}

/// The served object.
#[derive(Debug)]
pub struct Health {
    daemon: Arc<dyn Backend>,
    constants: Constants,
    auth: Authorizer,
}

impl Health {
    /// An object answering from `daemon`'s snapshots and calls.
    pub fn new(daemon: Arc<dyn Backend>, constants: Constants, auth: Authorizer) -> Self {
        Self {
            daemon,
            constants,
            auth,
        }
    }
}

#[zbus::interface(name = "org.fail2ban_healthd.Health1", introspection_docs = false)]
impl Health {
    /// Records "this jail was just activated" and starts a probe at once.
    #[zbus(out_args("activated_at"))]
    async fn register_activation(
        &self,
        jail_name: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u64, HealthError> {
        let uid = self.auth.authorize(Right::Manage, &header, conn).await?;
        check_jail_name(&jail_name)?;
        tracing::info!(jail = %jail_name, uid, "activation_registered");
        let at = self
            .daemon
            .register_activation(jail_name)
            .await
            .ok_or_else(|| HealthError::ShuttingDown("the daemon is stopping".into()))?;
        Ok(values::usec(Some(at)))
    }

    /// Clears the recovery record, resolved or not.
    async fn dismiss_recovery(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), HealthError> {
        let uid = self.auth.authorize(Right::Manage, &header, conn).await?;
        match self.daemon.dismiss_recovery().await {
            Some(Ok(())) => {
                tracing::info!(uid, "pending_recovery_dismissed");
                Ok(())
            }
            Some(Err(Refusal::RollbackRunning)) => Err(HealthError::RollbackInProgress(
                "a rollback is running; dismiss the record when it has ended".into(),
            )),
            Some(Err(_)) => Err(HealthError::NoPendingRecovery(
                "there is no pending recovery".into(),
            )),
            None => Err(HealthError::ShuttingDown("the daemon is stopping".into())),
        }
    }

    /// Disables the record's jail in the daemon's drop-in, restarts
    /// fail2ban and waits for it; answers `{DropInPath, Restarted, Online,
    /// ActiveJails}`.
    #[zbus(out_args("result"))]
    async fn rollback(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<String, OwnedVariant>, HealthError> {
        let uid = self.auth.authorize(Right::Rollback, &header, conn).await?;
        self.daemon
            .rollback(conn, uid)
            .await
            .map(|outcome| values::rollback(&outcome))
            .map_err(rollback_error)
    }

    /// Runs fail2ban's own checks for the jail as if it were enabled;
    /// answers `{Ok, Messages}`. Nothing is enabled, the server is not
    /// touched.
    #[zbus(out_args("result"))]
    async fn check(
        &self,
        jail_name: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<String, OwnedVariant>, HealthError> {
        let uid = self.auth.authorize(Right::Manage, &header, conn).await?;
        check_jail_name(&jail_name)?;
        let report = self.daemon.check(&jail_name).await;
        tracing::info!(jail = %jail_name, uid, ok = report.ok, "jail_checked");
        Ok(values::check(&report))
    }

    /// Enables the jail in the daemon's drop-in, registers it as an
    /// activation, reloads fail2ban, and rolls it back by itself if a
    /// failure is attributed to it before the deadline.
    #[zbus(name = "Try", out_args("started_at"))]
    async fn try_jail(
        &self,
        jail_name: String,
        timeout_usec: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u64, HealthError> {
        let uid = self.auth.authorize(Right::Rollback, &header, conn).await?;
        check_jail_name(&jail_name)?;
        let window = std::time::Duration::from_micros(self.constants.crash_window_usec);
        let timeout = trial_timeout(timeout_usec, window).map_err(HealthError::TryFailed)?;
        let started = self
            .daemon
            .try_jail(conn, &jail_name, timeout, uid)
            .await
            .map_err(try_error)?;
        Ok(values::usec(Some(started)))
    }

    /// Ends the trial now, keeping its jail.
    async fn confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), HealthError> {
        let uid = self.auth.authorize(Right::Rollback, &header, conn).await?;
        let trial = trial_answer(self.daemon.confirm_trial().await)?;
        tracing::info!(uid, jail = %trial.map(|t| t.jail_name).unwrap_or_default(), "trial_confirmed");
        Ok(())
    }

    /// Ends the trial now, rolling its jail back.
    async fn abort(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), HealthError> {
        let uid = self.auth.authorize(Right::Rollback, &header, conn).await?;
        let trial = trial_answer(self.daemon.abort_trial().await)?;
        tracing::warn!(uid, jail = %trial.map(|t| t.jail_name).unwrap_or_default(), "trial_aborted");
        Ok(())
    }

    /// Probes now and returns once the properties reflect the result.
    #[zbus(out_args("online"))]
    async fn probe(&self, #[zbus(header)] header: Header<'_>) -> zbus::fdo::Result<bool> {
        // zbus checks arguments only where there are some to read.
        let signature = header.signature().to_string();
        if !signature.is_empty() {
            return Err(zbus::fdo::Error::InvalidArgs(format!(
                "Signature mismatch: got `{signature}`, expected ``"
            )));
        }
        Ok(match self.daemon.probe().await {
            Some(online) => online,
            None => self.daemon.snapshot().online,
        })
    }

    /// The latest probe got a valid answer.
    #[zbus(property)]
    fn online(&self) -> bool {
        self.daemon.snapshot().online
    }

    /// Why not online (`0` while online).
    #[zbus(property)]
    fn offline_reason(&self) -> u32 {
        self.daemon.snapshot().offline_reason.code()
    }

    /// fail2ban's version; empty while offline.
    #[zbus(property)]
    fn version(&self) -> String {
        self.daemon.snapshot().version.clone()
    }

    /// The number of jails fail2ban reports.
    #[zbus(property)]
    fn active_jails(&self) -> u32 {
        values::active_jails(&self.daemon.snapshot())
    }

    /// Per jail, sorted by name: name, currently failed, total failed,
    /// currently banned, total banned.
    #[zbus(property)]
    fn jails(&self) -> Vec<(String, u32, u32, u32, u32)> {
        values::jails(&self.daemon.snapshot().jails)
    }

    /// When the latest probe finished.
    #[zbus(property(emits_changed_signal = "false"))]
    fn last_probe_timestamp(&self) -> u64 {
        values::usec(self.daemon.snapshot().last_probe)
    }

    /// `{}` or `{JailName, ActivatedAt}`.
    #[zbus(property)]
    fn last_activation(&self) -> HashMap<String, OwnedVariant> {
        values::activation(self.daemon.snapshot().last_activation.as_ref())
    }

    /// `{}` or the recovery record.
    #[zbus(property)]
    fn pending_recovery(&self) -> HashMap<String, OwnedVariant> {
        values::record(self.daemon.snapshot().pending_recovery.as_ref())
    }

    /// `{}` or `{JailName, StartedAt, DeadlineAt}`.
    #[zbus(property)]
    fn trial(&self) -> HashMap<String, OwnedVariant> {
        values::trial(self.daemon.snapshot().trial.as_ref())
    }

    /// The configured probe interval.
    #[zbus(property(emits_changed_signal = "const"), name = "ProbeIntervalUSec")]
    fn probe_interval_usec(&self) -> u64 {
        self.constants.probe_interval_usec
    }

    /// The configured crash-attribution window.
    #[zbus(property(emits_changed_signal = "const"), name = "CrashWindowUSec")]
    fn crash_window_usec(&self) -> u64 {
        self.constants.crash_window_usec
    }

    /// The fail2ban socket probed.
    #[zbus(property(emits_changed_signal = "const"))]
    fn socket_path(&self) -> String {
        self.constants.socket_path.clone()
    }

    /// fail2ban went from offline to online.
    #[zbus(signal)]
    pub async fn came_online(emitter: &SignalEmitter<'_>, version: &str) -> zbus::Result<()>;

    /// fail2ban went from online to offline.
    #[zbus(signal)]
    pub async fn went_offline(emitter: &SignalEmitter<'_>, reason: u32) -> zbus::Result<()>;

    /// A recovery record was created.
    #[zbus(signal)]
    pub async fn activation_crash_detected(
        emitter: &SignalEmitter<'_>,
        jail_name: &str,
        activated_at: u64,
        detected_at: u64,
        cause: u32,
    ) -> zbus::Result<()>;

    /// A trial ended: kept, or rolled back (`cause` the record's, 0 for
    /// `Abort`).
    #[zbus(signal)]
    pub async fn trial_ended(
        emitter: &SignalEmitter<'_>,
        jail_name: &str,
        kept: bool,
        cause: u32,
    ) -> zbus::Result<()>;

    /// An unresolved record became resolved.
    #[zbus(signal)]
    pub async fn recovery_resolved(
        emitter: &SignalEmitter<'_>,
        jail_name: &str,
        recovered_at: u64,
    ) -> zbus::Result<()>;
}

fn check_jail_name(jail_name: &str) -> Result<(), HealthError> {
    if valid_jail_name(jail_name) {
        return Ok(());
    }
    Err(HealthError::InvalidJailName(format!(
        "{:?} is not a jail name: 1 to 128 bytes of A-Z a-z 0-9 . _ @ + -, not starting with . or -",
        jail_name.chars().take(140).collect::<String>()
    )))
}

fn trial_answer(
    answer: Option<Result<Option<Trial>, Refusal>>,
) -> Result<Option<Trial>, HealthError> {
    match answer {
        Some(Ok(t)) => Ok(t),
        Some(Err(Refusal::NoTrial)) => Err(HealthError::NoTrial("no trial is running".into())),
        Some(Err(Refusal::RollbackRunning)) => Err(HealthError::RollbackInProgress(
            "the trial's jail is being rolled back already".into(),
        )),
        Some(Err(other)) => Err(HealthError::NoTrial(other.to_string())),
        None => Err(HealthError::ShuttingDown("the daemon is stopping".into())),
    }
}

/// `Rollback()`'s errors: a refusal by the monitor, or a failure on the way.
fn rollback_error(e: RollbackError) -> HealthError {
    match e {
        RollbackError::Refused(Refusal::RollbackRunning) => HealthError::RollbackInProgress(
            "another rollback is running; try again when it has ended".into(),
        ),
        RollbackError::Refused(refusal @ Refusal::JailRanBefore(_)) => {
            HealthError::RollbackFailed(format!("{refusal}; nothing was written"))
        }
        RollbackError::Refused(Refusal::RolledBackAlready) => {
            HealthError::NoPendingRecovery("the pending recovery was rolled back already".into())
        }
        RollbackError::Refused(Refusal::TrialRunning) => HealthError::TrialInProgress(
            "a trial is running and rolls its own jail back: use Abort to end it now".into(),
        ),
        RollbackError::Refused(refusal) => HealthError::NoPendingRecovery(refusal.to_string()),
        RollbackError::Failed(failure) => HealthError::RollbackFailed(failure.to_string()),
        RollbackError::ShuttingDown => HealthError::ShuttingDown("the daemon is stopping".into()),
    }
}

/// `Try()`'s errors.
fn try_error(e: TryError) -> HealthError {
    match e {
        TryError::TrialInProgress => HealthError::TrialInProgress(e.to_string()),
        TryError::RollbackInProgress => HealthError::RollbackInProgress(e.to_string()),
        TryError::Failed(why) => HealthError::TryFailed(why),
        TryError::ShuttingDown => HealthError::ShuttingDown(e.to_string()),
    }
}
