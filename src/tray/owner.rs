//! The owner loop: the one task that holds the [`Model`], sends
//! notifications and updates the item. It reacts to one [`Input`] at a
//! time, and to the timer that ends the "just came back" state.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::Signal;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::Input;
use crate::action::call;
use crate::item::{Item, UiEvent};
use crate::model::{Action, Model, Notice, Record};
use crate::notify::{self, Notifier};
use crate::watch::refresh_probe_time;

/// The owner loop's state: the model and what shows it.
pub struct Owner {
    model: Model,
    /// The item in the panel.
    handle: ksni::Handle<Item>,
    notifier: Notifier,
    /// Where the tasks this loop starts (actions, probe-time reads) send
    /// their results.
    tx: UnboundedSender<Input>,
    /// The watcher's connection to the daemon's bus, while it has one.
    conn: Option<zbus::Connection>,
    /// Notification id → the record its buttons act on.
    buttons: HashMap<u32, (String, u64)>,
}

impl Owner {
    /// The loop's state; `tx` sends to the receiver [`Owner::run`] reads.
    pub fn new(
        model: Model,
        handle: ksni::Handle<Item>,
        notifier: Notifier,
        tx: UnboundedSender<Input>,
    ) -> Self {
        Owner {
            model,
            handle,
            notifier,
            tx,
            conn: None,
            buttons: HashMap::new(),
        }
    }

    /// Runs until Quit, SIGINT or SIGTERM, then removes the item.
    pub async fn run(mut self, mut rx: UnboundedReceiver<Input>, mut sigterm: Signal) {
        loop {
            let now = Utc::now();
            let timer = self
                .model
                .next_change(now)
                .map(|at| (at - now).to_std().unwrap_or_default());
            let input = tokio::select! {
                Some(input) = rx.recv() => input,
                () = sleep(timer) => {
                    self.model.tick(Utc::now());
                    self.redraw(Utc::now()).await;
                    continue;
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = sigterm.recv() => break,
            };
            if self.on_input(input).await.is_break() {
                break;
            }
        }
        self.handle.shutdown().await;
    }

    /// One input: the model steps, its notices are sent, the item redrawn.
    async fn on_input(&mut self, input: Input) -> ControlFlow<()> {
        let now = Utc::now();
        let notices = match input {
            Input::Connected(c) => {
                self.conn = Some(c);
                Vec::new()
            }
            Input::Appeared(props) => self.model.appeared(&props, now),
            Input::Changed(props) => self.model.changed(&props, now),
            Input::TrialEnded(jail, kept, cause) => self.model.trial_ended(&jail, kept, cause),
            Input::Gone => {
                self.model.gone();
                Vec::new()
            }
            Input::Unreachable(why) => {
                self.conn = None;
                self.model.unreachable(&why);
                Vec::new()
            }
            Input::Ui(UiEvent::Clicked(Action::Quit)) => return ControlFlow::Break(()),
            Input::Ui(event) => {
                self.on_ui(event, now).await;
                Vec::new()
            }
            Input::Button(id, key) => {
                // Not a record's button: nothing changed, nothing to redraw.
                let Some((action, record)) = self.button(id, &key) else {
                    return ControlFlow::Continue(());
                };
                self.on_button(action, &record).await;
                Vec::new()
            }
            Input::Done(action, result) => {
                self.on_done(action, result).await;
                Vec::new()
            }
        };
        self.announce(&notices).await;
        self.redraw(now).await;
        ControlFlow::Continue(())
    }

    /// A menu click (but Quit), or the menu opening.
    async fn on_ui(&mut self, event: UiEvent, now: DateTime<Utc>) {
        match event {
            UiEvent::MenuOpening => self.refresh_probe_time(),
            UiEvent::Clicked(Action::ShowStatus) => {
                let m = notify::answer(Action::ShowStatus, &Ok(self.model.status_text(now)));
                self.notifier.send(&m).await;
            }
            UiEvent::Clicked(action) => self.start(action),
        }
    }

    /// The action and record of button `key` of notification `id`, if it
    /// is one of a record's notifications.
    fn button(&self, id: u32, key: &str) -> Option<(Action, (String, u64))> {
        let record = self.buttons.get(&id)?;
        let action = match key {
            notify::ROLLBACK_KEY => Action::Rollback,
            notify::DISMISS_KEY => Action::Dismiss,
            _ => return None,
        };
        Some((action, record.clone()))
    }

    /// A notification's button: the action starts if it still applies to
    /// the record the notification was about; otherwise the user is told
    /// why not.
    async fn on_button(&mut self, action: Action, record: &(String, u64)) {
        let current = if action == Action::Rollback {
            self.model.offers_rollback()
        } else {
            self.model.record()
        };
        if current.map(Record::key).as_ref() == Some(record) {
            self.start(action);
            return;
        }
        let why = if self.model.record().map(Record::key).as_ref() != Some(record) {
            "that record is no longer the daemon's record"
        } else if self.model.trial().is_some() {
            "a trial is running: keep it or roll it back first"
        } else {
            "the daemon would not roll that jail back"
        };
        self.notifier
            .send(&notify::answer(action, &Err(why.into())))
            .await;
    }

    /// An action ended.
    async fn on_done(&mut self, action: Action, result: Result<String, String>) {
        self.model.finished(action, result.is_ok());
        tracing::info!(action = action.words(), ?result, "action ended");
        // A successful dismiss or probe shows in the icon itself, the end
        // of a trial in its own notice.
        if result.is_err() || action == Action::Rollback {
            self.notifier.send(&notify::answer(action, &result)).await;
        }
        self.refresh_probe_time();
    }

    /// Sends the notices, remembering which record each one's buttons act on.
    async fn announce(&mut self, notices: &[Notice]) {
        for notice in notices {
            let m = notify::message(notice);
            let id = self.notifier.send(&m).await;
            let record = match notice {
                Notice::Crash { record } | Notice::Resolved { record } => Some(record),
                Notice::TrialEnded { record, .. } => record.as_ref(),
                _ => None,
            };
            if let (Some(id), Some(record)) = (id, record) {
                self.buttons.insert(id, record.key());
            }
        }
    }

    /// Shows the model's view now.
    async fn redraw(&self, now: DateTime<Utc>) {
        let view = self.model.view(now);
        self.handle.update(|item| item.show(view)).await;
    }

    /// Reads the daemon's `LastProbeTimestamp` again, if it can be reached.
    fn refresh_probe_time(&self) {
        if let Some(c) = &self.conn {
            tokio::spawn(refresh_probe_time(c.clone(), self.tx.clone()));
        }
    }

    /// Starts `action` on the daemon unless one runs or the daemon is away.
    fn start(&mut self, action: Action) {
        if self.model.busy().is_some() {
            return;
        }
        let Some(conn) = self
            .conn
            .as_ref()
            .filter(|_| self.model.snapshot().is_some())
            .cloned()
        else {
            let _ = self.tx.send(Input::Done(
                action,
                Err("fail2ban-healthd is not running".into()),
            ));
            return;
        };
        self.model.set_busy(Some(action));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = call(&conn, action).await;
            let _ = tx.send(Input::Done(action, result));
        });
    }
}

/// Sleeps for `d`, or forever for `None`.
async fn sleep(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
