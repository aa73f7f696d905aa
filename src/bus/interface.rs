//! The served object: `org.fail2ban_healthd.Health1` at
//! `/org/fail2ban_healthd/Health1`.
//!
//! Property getters read the latest snapshot, so they answer at once even
//! while a probe hangs. Methods check the caller (see [`super::auth`]), then send a command to
//! the owner task and await its reply. Signals are emitted by the
//! publisher through the associated functions declared here.

use std::collections::HashMap;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedVariant};

use super::auth::{Authorizer, Right};
use super::error::HealthError;
use super::{valid_jail_name, values};
use crate::daemon::{Handle, rollback};
use crate::monitor::Refusal;

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
    daemon: Handle,
    constants: Constants,
    auth: Authorizer,
    rollback: rollback::Settings,
}

impl Health {
    /// An object answering from `daemon`'s snapshots and commands.
    pub fn new(
        daemon: Handle,
        constants: Constants,
        auth: Authorizer,
        rollback: rollback::Settings,
    ) -> Self {
        Self {
            daemon,
            constants,
            auth,
            rollback,
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
        if !valid_jail_name(&jail_name) {
            return Err(HealthError::InvalidJailName(format!(
                "{:?} is not a jail name: 1 to 128 bytes of A-Z a-z 0-9 . _ @ + -, not starting with . or -",
                jail_name.chars().take(140).collect::<String>()
            )));
        }
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
        let activation = match self.daemon.begin_rollback().await {
            Some(Ok(activation)) => activation,
            Some(Err(Refusal::RollbackRunning)) => {
                return Err(HealthError::RollbackInProgress(
                    "another rollback is running; try again when it has ended".into(),
                ));
            }
            Some(Err(refusal @ Refusal::JailRanBefore(_))) => {
                return Err(HealthError::RollbackFailed(format!(
                    "{refusal}; nothing was written"
                )));
            }
            Some(Err(Refusal::RolledBackAlready)) => {
                return Err(HealthError::NoPendingRecovery(
                    "the pending recovery was rolled back already".into(),
                ));
            }
            Some(Err(Refusal::NoPendingRecovery)) => {
                return Err(HealthError::NoPendingRecovery(
                    "there is no pending recovery".into(),
                ));
            }
            None => return Err(HealthError::ShuttingDown("the daemon is stopping".into())),
        };
        rollback::run(
            self.rollback.clone(),
            conn.clone(),
            self.daemon.clone(),
            activation,
            uid,
        )
        .await
        .map(|outcome| values::rollback(&outcome))
        .map_err(|e| HealthError::RollbackFailed(e.to_string()))
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

    /// An unresolved record became resolved.
    #[zbus(signal)]
    pub async fn recovery_resolved(
        emitter: &SignalEmitter<'_>,
        jail_name: &str,
        recovered_at: u64,
    ) -> zbus::Result<()>;
}
