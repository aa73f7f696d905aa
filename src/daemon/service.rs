//! The daemon behind the bus: [`Service`] implements [`Backend`] over the
//! owner task's [`Handle`], the rollback runner and the trial's steps.
//! Nothing here speaks the contract's error names; the interface maps.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use zbus::Connection;

use super::handle::Handle;
use super::rollback::{Rollbacks, Undo};
use super::trial;
use crate::bus::backend::{Answer, Backend, Reply};
use crate::fail2ban::check::CheckReport;
use crate::monitor::{Snapshot, Trial};
use crate::rollback::{Outcome, RollbackError, TryError};

/// The daemon as the served interface sees it.
#[derive(Debug, Clone)]
pub struct Service {
    /// Rollbacks, and through them the owner task.
    pub rollbacks: Rollbacks,
}

impl Service {
    fn daemon(&self) -> &Handle {
        &self.rollbacks.daemon
    }
}

impl Backend for Service {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.daemon().snapshot()
    }

    fn register_activation(&self, jail: String) -> Reply<'_, Option<DateTime<Utc>>> {
        Box::pin(self.daemon().register_activation(jail))
    }

    fn dismiss_recovery(&self) -> Reply<'_, Answer<()>> {
        Box::pin(self.daemon().dismiss_recovery())
    }

    fn probe(&self) -> Reply<'_, Option<bool>> {
        Box::pin(self.daemon().probe())
    }

    fn rollback<'a>(
        &'a self,
        conn: &'a Connection,
        uid: u32,
    ) -> Reply<'a, Result<Outcome, RollbackError>> {
        Box::pin(async move {
            let activation = match self.daemon().begin_rollback().await {
                Some(Ok(activation)) => activation,
                Some(Err(refusal)) => return Err(RollbackError::Refused(refusal)),
                None => return Err(RollbackError::ShuttingDown),
            };
            Ok(self
                .rollbacks
                .run(conn.clone(), activation, uid, Undo::Disable)
                .await?)
        })
    }

    fn check<'a>(&'a self, jail: &'a str) -> Reply<'a, CheckReport> {
        Box::pin(trial::check(&self.rollbacks.settings, jail))
    }

    fn try_jail<'a>(
        &'a self,
        conn: &'a Connection,
        jail: &'a str,
        timeout: Duration,
        uid: u32,
    ) -> Reply<'a, Result<DateTime<Utc>, TryError>> {
        Box::pin(trial::start(
            &self.rollbacks.settings,
            conn,
            self.daemon(),
            jail,
            timeout,
            uid,
        ))
    }

    fn confirm_trial(&self) -> Reply<'_, Answer<Option<Trial>>> {
        Box::pin(self.daemon().confirm_trial())
    }

    fn abort_trial(&self) -> Reply<'_, Answer<Option<Trial>>> {
        Box::pin(self.daemon().abort_trial())
    }
}
