//! fail2ban-healthd-tray: the desktop applet of fail2ban-healthd.
//!
//! A StatusNotifierItem (through ksni, on the session bus) whose icon,
//! tooltip and menu show fail2ban's health as the daemon publishes it on
//! the system bus, with notifications on every transition and the
//! daemon's actions (roll back, dismiss, probe, keep or roll back a
//! trial) one click away.
//!
//! Tasks: the watcher ([`watch`]) turns the daemon's bus traffic into
//! [`Input`]s; the owner loop ([`owner`]) alone holds the [`model::Model`],
//! sends notifications and updates the item, starting the daemon's
//! actions ([`action`]). Nothing polls: the applet wakes only for bus
//! messages, clicks, and the one timer that ends the "just came back"
//! state.

mod action;
mod icon;
mod item;
mod model;
mod notify;
mod owner;
mod watch;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use futures_util::StreamExt as _;
use ksni::TrayMethods as _;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use zbus::OwnedVariant;

use fail2ban_healthd::client::BusArgs;

use item::{Item, UiEvent};
use model::{Action, Model};
use notify::Notifier;
use owner::Owner;

/// The desktop applet of fail2ban-healthd: fail2ban's health in the panel.
#[derive(Debug, Parser)]
#[command(name = "fail2ban-healthd-tray", version)]
struct Cli {
    #[command(flatten)]
    bus: BusArgs,
    /// How long the icon stays amber after fail2ban comes back online.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    settle_time: Duration,
    /// Log level on standard error: error, warn, info, debug, trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing::Level,
}

/// What the owner loop reacts to.
#[derive(Debug)]
enum Input {
    /// The watcher is connected to the daemon's bus.
    Connected(zbus::Connection),
    /// The daemon appeared: its `GetAll`.
    Appeared(HashMap<String, OwnedVariant>),
    /// One `PropertiesChanged`, or a refreshed `LastProbeTimestamp`.
    Changed(HashMap<String, OwnedVariant>),
    /// The daemon's `TrialEnded`: jail, kept, cause.
    TrialEnded(String, bool, u32),
    /// The daemon left the bus.
    Gone,
    /// The bus itself cannot be reached.
    Unreachable(String),
    /// A menu click or the menu opening.
    Ui(UiEvent),
    /// A notification's button.
    Button(u32, String),
    /// An action ended: text for the user, or why it failed.
    Done(Action, Result<String, String>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(cli.log_level)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fail2ban-healthd-tray: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fail2ban-healthd-tray: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (tx, rx) = unbounded_channel::<Input>();
    let model = Model::new(cli.settle_time);
    let handle = show_item(&model, &tx).await?;
    let session = zbus::Connection::session().await;
    if let Err(e) = &session {
        tracing::warn!(error = %e, "no session bus for notifications");
    }
    let notifier = notifier(session.as_ref().ok(), &tx).await;
    tokio::spawn(watch::watch(cli.bus.clone(), tx.clone()));
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    Owner::new(model, handle, notifier, tx)
        .run(rx, sigterm)
        .await;
    Ok(())
}

/// Shows the item on the session bus; its clicks become [`Input::Ui`].
async fn show_item(
    model: &Model,
    tx: &UnboundedSender<Input>,
) -> Result<ksni::Handle<Item>, String> {
    let (ui_tx, mut ui_rx) = unbounded_channel::<UiEvent>();
    let handle = Item::new(model.view(Utc::now()), ui_tx)
        // Started with the session, the applet may come before the panel.
        .assume_sni_available(true)
        .spawn()
        .await
        .map_err(|e| format!("cannot show the item on the session bus: {e}"))?;
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(e) = ui_rx.recv().await {
            if tx.send(Input::Ui(e)).is_err() {
                break;
            }
        }
    });
    Ok(handle)
}

/// The notifier on the session bus (`None`: notifications are only
/// logged); its buttons become [`Input::Button`].
async fn notifier(session: Option<&zbus::Connection>, tx: &UnboundedSender<Input>) -> Notifier {
    let notifier = Notifier::new(session).await;
    let Some(proxy) = notifier.proxy() else {
        return notifier;
    };
    match proxy.receive_action_invoked().await {
        Ok(mut clicks) => {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(signal) = clicks.next().await {
                    if let Ok(args) = signal.args()
                        && tx
                            .send(Input::Button(args.id, args.action_key.to_string()))
                            .is_err()
                    {
                        break;
                    }
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "notification buttons will not work"),
    }
    notifier
}
