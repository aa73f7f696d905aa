//! The owner task's commands and the cloneable [`Handle`] that sends them:
//! commands in (each with a oneshot for its answer), snapshots out (a
//! `watch` channel, so that a property read never waits for a probe).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::monitor::{Activation, Input, Memory, Refusal, Snapshot, Trial};

/// A request to the owner task; each carries the channel for its answer.
#[derive(Debug)]
pub enum Command {
    /// Register an activation; answers with its time.
    RegisterActivation {
        /// The validated jail name.
        jail: String,
        /// Where the answer goes.
        reply: oneshot::Sender<DateTime<Utc>>,
    },
    /// Clear the recovery record.
    DismissRecovery {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// Probe now; answers with `online` once the snapshot reflects it.
    Probe {
        /// A probe that ended less than a second ago answers (`Probe()`
        /// from the bus); false for the daemon's own waits, which must see
        /// a probe made after they asked.
        floor: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<bool>,
    },
    /// Mark a rollback started; answers with the record's activation.
    BeginRollback {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Activation, Refusal>>,
    },
    /// Mark the rollback ended.
    FinishRollback {
        /// The activation it was for.
        activation: Activation,
        /// Whether the jail was disabled and fail2ban answered afterwards.
        done: bool,
    },
    /// A trial input ([`Input::TrialClaimed`] and the others); answers
    /// with the trial then running, or why not.
    Trial {
        /// The input.
        input: Input,
        /// Where the answer goes; none for a cancellation.
        reply: Option<oneshot::Sender<Result<Option<Trial>, Refusal>>>,
    },
}

/// A cloneable handle on the owner task: commands in, snapshots out.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    /// The memory last written to the state file, from the state-file
    /// writer.
    saved: watch::Receiver<Arc<Memory>>,
}

impl Handle {
    /// A handle sending to `commands`, reading `snapshot` and what the
    /// state file holds (`saved`).
    pub fn new(
        commands: mpsc::Sender<Command>,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        saved: watch::Receiver<Arc<Memory>>,
    ) -> Self {
        Self {
            commands,
            snapshot,
            saved,
        }
    }

    /// Waits until the state file holds a memory for which `on_disk` is
    /// true; false if none is written within `limit`.
    pub async fn saved(&self, on_disk: impl Fn(&Memory) -> bool, limit: Duration) -> bool {
        let mut saved = self.saved.clone();
        matches!(
            tokio::time::timeout(limit, saved.wait_for(|m| on_disk(m))).await,
            Ok(Ok(_))
        )
    }

    /// The latest snapshot; never waits for a probe.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Registers an activation; `None` when the daemon is stopping.
    pub async fn register_activation(&self, jail: String) -> Option<DateTime<Utc>> {
        self.ask(|reply| Command::RegisterActivation { jail, reply })
            .await
    }

    /// Dismisses the record; `None` when the daemon is stopping.
    pub async fn dismiss_recovery(&self) -> Option<Result<(), Refusal>> {
        self.ask(|reply| Command::DismissRecovery { reply }).await
    }

    /// Probes now; `None` when the daemon is stopping.
    pub async fn probe(&self) -> Option<bool> {
        self.ask(|reply| Command::Probe { floor: true, reply })
            .await
    }

    /// Probes now, never answered by an earlier probe (a rollback waiting
    /// for fail2ban's jails to settle); `None` when the daemon is stopping.
    pub async fn probe_fresh(&self) -> Option<bool> {
        self.ask(|reply| Command::Probe {
            floor: false,
            reply,
        })
        .await
    }

    /// Marks a rollback started; the record's activation, or why not.
    pub async fn begin_rollback(&self) -> Option<Result<Activation, Refusal>> {
        self.ask(|reply| Command::BeginRollback { reply }).await
    }

    /// Marks the rollback started last as ended, without waiting (also
    /// from a destructor).
    pub fn finish_rollback(&self, activation: Activation, done: bool) {
        self.send_now(Command::FinishRollback { activation, done });
    }

    async fn trial(&self, input: Input) -> Option<Result<Option<Trial>, Refusal>> {
        self.ask(|reply| Command::Trial {
            input,
            reply: Some(reply),
        })
        .await
    }

    /// Claims the one trial slot for `jail` while its checks run.
    pub async fn claim_trial(&self, jail: String) -> Option<Result<(), Refusal>> {
        self.trial(Input::TrialClaimed { jail })
            .await
            .map(|r| r.map(|_| ()))
    }

    /// Starts the claimed trial; answers with its start.
    pub async fn start_trial(
        &self,
        jail: String,
        timeout: std::time::Duration,
        dropin_before: Option<String>,
    ) -> Option<Result<DateTime<Utc>, Refusal>> {
        let input = Input::TrialStarted {
            jail,
            timeout,
            dropin_before,
        };
        self.trial(input)
            .await
            .map(|r| r.and_then(|t| t.map(|t| t.started_at).ok_or(Refusal::NoTrial)))
    }

    /// Frees a claimed trial slot, or ends a trial that could not be set
    /// up, without waiting (also from a destructor).
    pub fn cancel_trial(&self) {
        self.send_now(Command::Trial {
            input: Input::TrialCancelled,
            reply: None,
        });
    }

    /// `Confirm()`: ends the trial, keeping its jail.
    pub async fn confirm_trial(&self) -> Option<Result<Option<Trial>, Refusal>> {
        self.trial(Input::TrialConfirmed).await
    }

    /// `Abort()`: rolls the trial's jail back.
    pub async fn abort_trial(&self) -> Option<Result<Option<Trial>, Refusal>> {
        self.trial(Input::TrialAborted).await
    }

    /// Sends `command` without waiting; a full queue is waited for in a
    /// task.
    fn send_now(&self, command: Command) {
        if let Err(mpsc::error::TrySendError::Full(command)) = self.commands.try_send(command) {
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let _ = commands.send(command).await;
            });
        }
    }
}
