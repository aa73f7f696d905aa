//! The recovery record after it was made: it resolves when its failure
//! clears, a manager may dismiss it, or roll back its jail (one rollback
//! at a time; it owns the record until it ends).

use super::{Activation, Cause, Event, Monitor, Now, RecoveryRecord, Refusal};

impl Monitor {
    /// Resolves an unresolved record, whatever its cause.
    pub(super) fn resolve(&mut self, now: Now) {
        if let Some(record) = self
            .snapshot
            .pending_recovery
            .as_mut()
            .filter(|r| !r.recovered())
        {
            record.recovered_at = Some(now.wall);
            self.events.push_back(Event::RecoveryResolved {
                jail: record.jail_name.clone(),
                recovered_at: now.wall,
            });
        }
    }

    /// Resolves a cause-2 or cause-3 record whose condition has cleared.
    pub(super) fn resolve_cleared(&mut self, now: Now) {
        let snapshot = &self.snapshot;
        let cleared = snapshot.unresolved().is_some_and(|r| match &r.cause {
            // A rolled-back jail is not expected to run any more.
            Cause::JailNotRunning => r.rolled_back || snapshot.runs(&r.jail_name),
            Cause::JailsVanished(jails) => jails.iter().all(|j| snapshot.runs(j)),
            // Online is what a cause-1 record waits for.
            Cause::WentOffline(_) => true,
        });
        if cleared {
            self.resolve(now);
        }
    }

    /// A manager clears the record.
    pub(super) fn dismiss_recovery(&mut self) -> Result<(), Refusal> {
        if self.snapshot.pending_recovery.is_none() {
            return Err(Refusal::NoPendingRecovery);
        }
        // The rollback owns the record until it ends.
        if self.rollback_running {
            return Err(Refusal::RollbackRunning);
        }
        self.snapshot.pending_recovery = None;
        Ok(())
    }

    /// A manager starts rolling back the record's jail.
    pub(super) fn start_rollback(&mut self) -> Result<(), Refusal> {
        match &self.snapshot.pending_recovery {
            None => Err(Refusal::NoPendingRecovery),
            // The trial rolls its own jail back.
            Some(_) if self.trial.is_some() || self.trial_claimed => Err(Refusal::TrialRunning),
            Some(_) if self.rollback_running => Err(Refusal::RollbackRunning),
            Some(r) if r.rolled_back => Err(Refusal::RolledBackAlready),
            Some(r) if r.ran_before => Err(Refusal::JailRanBefore(r.jail_name.clone())),
            Some(_) => {
                self.rollback_running = true;
                // The restart the rollback causes is nobody's crash: the
                // activations registered before it are done with.
                self.spend_window();
                Ok(())
            }
        }
    }

    /// The rollback started last has ended (`done`: it succeeded).
    pub(super) fn finish_rollback(&mut self, now: Now, activation: &Activation, done: bool) {
        self.rollback_running = false;
        // A grace the rollback's restart opened is its own.
        self.grace = None;
        if let Some(r) = self
            .snapshot
            .pending_recovery
            .as_mut()
            .filter(|r| done && blames(r, activation))
        {
            r.rolled_back = true;
        }
        self.trial_rollback_finished(activation, done);
        self.request_probe(now);
    }
}

/// Whether `record` is attributed to `activation`.
pub(super) fn blames(record: &RecoveryRecord, activation: &Activation) -> bool {
    record.jail_name == activation.jail_name && record.activated_at == activation.activated_at
}
