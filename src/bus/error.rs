//! The interface's errors, named `org.fail2ban_healthd.Health1.Error.<Name>`.

/// Errors a method of the interface can answer with.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.fail2ban_healthd.Health1.Error")]
pub enum HealthError {
    /// A failure of the bus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller may not call this method: not root, not in the method's
    /// group, not authorized by polkit (or a cap on pending polkit checks
    /// was reached).
    NotAuthorized(String),
    /// The jail name breaks the contract's rules.
    InvalidJailName(String),
    /// `DismissRecovery` or `Rollback` while there is no record (or, for
    /// `Rollback`, only one rolled back already).
    NoPendingRecovery(String),
    /// The daemon is shutting down and takes no more commands.
    ShuttingDown(String),
    /// `Rollback` could not disable the jail or restart fail2ban, or
    /// refused a jail that was running before its activation.
    RollbackFailed(String),
    /// `DismissRecovery` or a second `Rollback` while a rollback runs.
    RollbackInProgress(String),
    /// `Try` while a trial runs, or `Rollback` while one runs (the trial
    /// rolls its own jail back).
    TrialInProgress(String),
    /// `Confirm` or `Abort` without a trial.
    NoTrial(String),
    /// `Try` could not start: a check failed, the jail runs already,
    /// fail2ban is not healthy, the drop-in is not the daemon's, or
    /// fail2ban cannot be reloaded. Nothing was changed.
    TryFailed(String),
}
