//! A client proxy of the interface, for the command-line client, tests and
//! Rust applets.

use std::collections::HashMap;

use zbus::OwnedVariant;

/// `org.fail2ban_healthd.Health1` as seen by a client.
#[zbus::proxy(
    interface = "org.fail2ban_healthd.Health1",
    default_service = "org.fail2ban_healthd.Health1",
    default_path = "/org/fail2ban_healthd/Health1"
)]
pub trait Health1 {
    /// Records an activation; returns when it was registered (µs).
    fn register_activation(&self, jail_name: &str) -> zbus::Result<u64>;
    /// Clears the recovery record.
    fn dismiss_recovery(&self) -> zbus::Result<()>;
    /// Probes now; returns whether fail2ban is online.
    fn probe(&self) -> zbus::Result<bool>;
    /// Disables the record's jail and restarts fail2ban; returns
    /// `{DropInPath, Restarted, Online, ActiveJails}`.
    fn rollback(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    /// Runs fail2ban's checks for the jail; returns `{Ok, Messages}`.
    fn check(&self, jail_name: &str) -> zbus::Result<HashMap<String, OwnedVariant>>;
    /// Starts a trial of the jail; returns its start (µs).
    #[zbus(name = "Try")]
    fn try_jail(&self, jail_name: &str, timeout_usec: u64) -> zbus::Result<u64>;
    /// Ends the trial, keeping its jail.
    fn confirm(&self) -> zbus::Result<()>;
    /// Ends the trial, rolling its jail back.
    fn abort(&self) -> zbus::Result<()>;

    /// The latest probe got a valid answer.
    #[zbus(property)]
    fn online(&self) -> zbus::Result<bool>;
    /// Why not online.
    #[zbus(property)]
    fn offline_reason(&self) -> zbus::Result<u32>;
    /// fail2ban's version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    /// The number of jails.
    #[zbus(property)]
    fn active_jails(&self) -> zbus::Result<u32>;
    /// Per-jail counters.
    #[zbus(property)]
    fn jails(&self) -> zbus::Result<Vec<(String, u32, u32, u32, u32)>>;
    /// When the latest probe finished (µs).
    #[zbus(property(emits_changed_signal = "false"))]
    fn last_probe_timestamp(&self) -> zbus::Result<u64>;
    /// The latest activation.
    #[zbus(property)]
    fn last_activation(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    /// The recovery record.
    #[zbus(property)]
    fn pending_recovery(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    /// The running trial: `{}` or `{JailName, StartedAt, DeadlineAt}`.
    #[zbus(property)]
    fn trial(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    /// The probe interval (µs).
    #[zbus(property(emits_changed_signal = "const"), name = "ProbeIntervalUSec")]
    fn probe_interval_usec(&self) -> zbus::Result<u64>;
    /// The crash window (µs).
    #[zbus(property(emits_changed_signal = "const"), name = "CrashWindowUSec")]
    fn crash_window_usec(&self) -> zbus::Result<u64>;
    /// The probed socket.
    #[zbus(property(emits_changed_signal = "const"))]
    fn socket_path(&self) -> zbus::Result<String>;

    /// fail2ban came online.
    #[zbus(signal)]
    fn came_online(&self, version: &str) -> zbus::Result<()>;
    /// fail2ban went offline.
    #[zbus(signal)]
    fn went_offline(&self, reason: u32) -> zbus::Result<()>;
    /// A recovery record was created.
    #[zbus(signal)]
    fn activation_crash_detected(
        &self,
        jail_name: &str,
        activated_at: u64,
        detected_at: u64,
        cause: u32,
    ) -> zbus::Result<()>;
    /// A trial ended.
    #[zbus(signal)]
    fn trial_ended(&self, jail_name: &str, kept: bool, cause: u32) -> zbus::Result<()>;
    /// A record was resolved.
    #[zbus(signal)]
    fn recovery_resolved(&self, jail_name: &str, recovered_at: u64) -> zbus::Result<()>;
}
