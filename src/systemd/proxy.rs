//! systemd's D-Bus interfaces, as far as the daemon uses them: zbus
//! proxies, declarations only.

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
    /// Starts the unit; returns the job.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Restarts the unit (starting it if stopped); returns the job.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Reloads the unit (its `ExecReload`); returns the job.
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Clears a failed state and the start rate limit.
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    /// systemd starts (`true`) or ends (`false`) reloading its units.
    #[zbus(signal)]
    fn reloading(&self, active: bool) -> zbus::Result<()>;
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
    /// The units that can start this one, for instance its `.socket`.
    #[zbus(property)]
    fn triggered_by(&self) -> zbus::Result<Vec<String>>;
    /// 128 bits that change with every start of the unit.
    #[zbus(property, name = "InvocationID")]
    fn invocation_id(&self) -> zbus::Result<Vec<u8>>;
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
    /// How often systemd restarted the service by itself (`Restart=`).
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
}

/// `org.freedesktop.systemd1.Socket`.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Socket",
    default_service = "org.freedesktop.systemd1"
)]
pub trait Socket {
    /// What it listens on: (type, address), e.g. `("Stream", "/run/x.sock")`.
    #[zbus(property)]
    fn listen(&self) -> zbus::Result<Vec<(String, String)>>;
}
