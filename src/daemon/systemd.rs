//! The parts of systemd's D-Bus API the daemon uses: following fail2ban's
//! unit and restarting it after a rollback.

use zbus::OwnedObjectPath;

/// `org.freedesktop.systemd1.Manager`.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    /// The unit's object, loading it if needed.
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// Asks systemd to send signals to this client.
    fn subscribe(&self) -> zbus::Result<()>;
    /// Restarts the unit (starting it if stopped); returns the job.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Clears a failed state and the start rate limit.
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    /// A job ended, with `result` `done`, `failed`, `canceled`, ...
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// `org.freedesktop.systemd1.Unit`.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
pub trait Unit {
    /// `active`, `failed`, `inactive`, ...
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    /// `loaded`, `not-found`, ...
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    /// `enabled`, `disabled`, `static`, ...
    #[zbus(property)]
    fn unit_file_state(&self) -> zbus::Result<String>;
}

/// `org.freedesktop.systemd1.Service`.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
pub trait Service {
    /// `success`, `exit-code`, `signal`, ...
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    /// The main process's exit code, or the signal that killed it.
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
}
