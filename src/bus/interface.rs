//! The served object: `org.fail2ban_healthd.Health1` at
//! `/org/fail2ban_healthd/Health1`.
//!
//! Property getters read the latest snapshot, so they answer at once even
//! while a probe hangs. Methods check the caller, then send a command to
//! the owner task and await its reply. Signals are emitted by the
//! publisher through the associated functions declared here.

use std::collections::HashMap;

use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedVariant};

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

/// Who may call the managing methods besides root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Managers {
    /// Members of this group (primary or supplementary) may manage.
    pub gid: Option<u32>,
}

/// The served object.
#[derive(Debug)]
pub struct Health {
    daemon: Handle,
    constants: Constants,
    managers: Managers,
    rollback: rollback::Settings,
}

impl Health {
    /// An object answering from `daemon`'s snapshots and commands.
    pub fn new(
        daemon: Handle,
        constants: Constants,
        managers: Managers,
        rollback: rollback::Settings,
    ) -> Self {
        Self {
            daemon,
            constants,
            managers,
            rollback,
        }
    }

    /// The caller's uid when it may manage.
    async fn authorize(&self, header: &Header<'_>, conn: &Connection) -> Result<u32, HealthError> {
        let sender = header
            .sender()
            .ok_or_else(|| HealthError::NotAuthorized("the call has no sender".into()))?;
        let creds = DBusProxy::new(conn)
            .await?
            .get_connection_credentials(BusName::from(sender.to_owned()))
            .await
            .map_err(|e| HealthError::ZBus(e.into()))?;
        let uid = creds.unix_user_id().ok_or_else(|| {
            HealthError::NotAuthorized("the bus does not say who the caller is".into())
        })?;
        let in_group = match (self.managers.gid, creds.unix_group_ids()) {
            (Some(gid), Some(groups)) => groups.contains(&gid),
            // The bus did not say: ask the group database.
            (Some(gid), None) => user_in_group(uid, gid),
            (None, _) => false,
        };
        if uid == 0 || in_group || polkit_allows(header, conn).await {
            Ok(uid)
        } else {
            Err(HealthError::NotAuthorized(format!(
                "uid {uid} may not manage fail2ban-healthd: use sudo, join the manage group, \
                 or get polkit's authorization for {POLKIT_ACTION}"
            )))
        }
    }
}

/// Whether `uid` belongs to `gid` (primary or supplementary) according to
/// the system's databases.
fn user_in_group(uid: u32, gid: u32) -> bool {
    use nix::unistd::{Gid, Uid, User, getgrouplist};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&Gid::from_raw(gid)))
}

/// The polkit action that lets other callers manage.
pub const POLKIT_ACTION: &str = "org.fail2ban_healthd.manage";

/// Asks polkit whether the caller may manage. The subject is the caller's
/// bus name from the message header (polkit resolves it to the caller's
/// process), never this daemon's own process. No polkit on the bus, or any
/// failure, means no.
async fn polkit_allows(header: &Header<'_>, conn: &Connection) -> bool {
    use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};
    let check = async {
        let subject = Subject::new_for_message_header(header).ok()?;
        let authority = AuthorityProxy::new(conn).await.ok()?;
        let result = authority
            .check_authorization(
                &subject,
                POLKIT_ACTION,
                &HashMap::new(),
                CheckAuthorizationFlags::ALLOW_USER_INTERACTION,
                "",
            )
            .await;
        match result {
            Ok(r) => Some(r.is_authorized),
            Err(e) => {
                tracing::debug!(error = %e, "polkit_unavailable");
                None
            }
        }
    };
    // polkit may wait for an authentication agent; give up before the
    // caller's own call times out (25 s by default), so that an answer
    // arriving later cannot act for a caller that has gone.
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(20), check).await,
        Ok(Some(true))
    )
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
        let uid = self.authorize(&header, conn).await?;
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
        let uid = self.authorize(&header, conn).await?;
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
        let uid = self.authorize(&header, conn).await?;
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
