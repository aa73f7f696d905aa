//! fail2ban-healthd-tray: the desktop applet of fail2ban-healthd.
//!
//! A StatusNotifierItem (through ksni, on the session bus) whose icon,
//! tooltip and menu show fail2ban's health as the daemon publishes it on
//! the system bus, with notifications on every transition and the
//! daemon's actions (roll back, dismiss, probe, keep or roll back a
//! trial) one click away.
//!
//! Tasks: the watcher ([`watch`]) turns the daemon's bus traffic into
//! [`Input`]s; the owner loop ([`run`]) alone holds the [`model::Model`],
//! sends notifications and updates the item. Nothing polls: the applet
//! wakes only for bus messages, clicks, and the one timer that ends the
//! "just came back" state.

mod icon;
mod item;
mod model;
mod notify;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use futures_util::StreamExt as _;
use ksni::TrayMethods as _;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use zbus::OwnedVariant;
use zbus::proxy::MethodFlags;

use fail2ban_healthd::bus::proxy::Health1Proxy;
use fail2ban_healthd::bus::{INTERFACE, NAME, PATH};
use fail2ban_healthd::client::BusArgs;

use item::{Item, UiEvent};
use model::{Action, Model, Notice};

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
    let (tx, mut rx) = unbounded_channel::<Input>();
    let mut model = Model::new(cli.settle_time);

    let (ui_tx, mut ui_rx) = unbounded_channel::<UiEvent>();
    let handle = Item::new(model.view(Utc::now()), ui_tx)
        // Started with the session, the applet may come before the panel.
        .assume_sni_available(true)
        .spawn()
        .await
        .map_err(|e| format!("cannot show the item on the session bus: {e}"))?;
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = ui_rx.recv().await {
                if tx.send(Input::Ui(e)).is_err() {
                    break;
                }
            }
        });
    }

    let session = zbus::Connection::session().await;
    if let Err(e) = &session {
        tracing::warn!(error = %e, "no session bus for notifications");
    }
    let mut notifier = notify::Notifier::new(session.as_ref().ok()).await;
    if let Some(proxy) = notifier.proxy() {
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
    }

    tokio::spawn(watch(cli.bus.clone(), tx.clone()));

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut conn: Option<zbus::Connection> = None;
    // Notification id → the record its buttons act on.
    let mut buttons: HashMap<u32, (String, u64)> = HashMap::new();
    loop {
        let now = Utc::now();
        let timer = model
            .next_change(now)
            .map(|at| (at - now).to_std().unwrap_or_default());
        let input = tokio::select! {
            Some(input) = rx.recv() => input,
            () = sleep(timer) => {
                model.tick(Utc::now());
                handle.update(|item| item.show(model.view(Utc::now()))).await;
                continue;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        };
        let now = Utc::now();
        let mut notices = Vec::new();
        match input {
            Input::Connected(c) => conn = Some(c),
            Input::Appeared(props) => notices = model.appeared(&props, now),
            Input::Changed(props) => notices = model.changed(&props, now),
            Input::TrialEnded(jail, kept, cause) => {
                notices = model.trial_ended(&jail, kept, cause);
            }
            Input::Gone => model.gone(),
            Input::Unreachable(why) => {
                conn = None;
                model.unreachable(&why);
            }
            Input::Ui(UiEvent::MenuOpening) => {
                if let Some(c) = &conn {
                    tokio::spawn(refresh_probe_time(c.clone(), tx.clone()));
                }
            }
            Input::Ui(UiEvent::Clicked(Action::Quit)) => break,
            Input::Ui(UiEvent::Clicked(Action::ShowStatus)) => {
                let m = notify::answer(Action::ShowStatus, &Ok(model.status_text(now)));
                notifier.send(&m).await;
            }
            Input::Ui(UiEvent::Clicked(action)) => start(action, &mut model, conn.as_ref(), &tx),
            Input::Button(id, key) => {
                let Some(key_of_record) = buttons.get(&id) else {
                    continue;
                };
                let action = match key.as_str() {
                    notify::ROLLBACK_KEY => Action::Rollback,
                    notify::DISMISS_KEY => Action::Dismiss,
                    _ => continue,
                };
                let current = if action == Action::Rollback {
                    model.offers_rollback()
                } else {
                    model.record()
                };
                if current.map(model::Record::key).as_ref() == Some(key_of_record) {
                    start(action, &mut model, conn.as_ref(), &tx);
                } else {
                    let why =
                        if model.record().map(model::Record::key).as_ref() != Some(key_of_record) {
                            "that record is no longer the daemon's record"
                        } else if model.trial().is_some() {
                            "a trial is running: keep it or roll it back first"
                        } else {
                            "the daemon would not roll that jail back"
                        };
                    notifier
                        .send(&notify::answer(action, &Err(why.into())))
                        .await;
                }
            }
            Input::Done(action, result) => {
                model.finished(action, result.is_ok());
                tracing::info!(action = action.words(), ?result, "action ended");
                // A successful dismiss or probe shows in the icon itself,
                // the end of a trial in its own notice.
                if result.is_err() || action == Action::Rollback {
                    notifier.send(&notify::answer(action, &result)).await;
                }
                if let Some(c) = &conn {
                    tokio::spawn(refresh_probe_time(c.clone(), tx.clone()));
                }
            }
        }
        for notice in &notices {
            let m = notify::message(notice);
            let id = notifier.send(&m).await;
            let record = match notice {
                Notice::Crash { record } | Notice::Resolved { record } => Some(record),
                Notice::TrialEnded { record, .. } => record.as_ref(),
                _ => None,
            };
            if let (Some(id), Some(record)) = (id, record) {
                buttons.insert(id, record.key());
            }
        }
        handle.update(|item| item.show(model.view(now))).await;
    }
    handle.shutdown().await;
    Ok(())
}

/// Sleeps for `d`, or forever for `None`.
async fn sleep(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Starts `action` on the daemon unless one runs or the daemon is away.
fn start(
    action: Action,
    model: &mut Model,
    conn: Option<&zbus::Connection>,
    tx: &UnboundedSender<Input>,
) {
    if model.busy().is_some() {
        return;
    }
    let Some(conn) = conn.filter(|_| model.snapshot().is_some()).cloned() else {
        let _ = tx.send(Input::Done(
            action,
            Err("fail2ban-healthd is not running".into()),
        ));
        return;
    };
    model.set_busy(Some(action));
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = call(&conn, action).await;
        let _ = tx.send(Input::Done(action, result));
    });
}

/// Calls the daemon for `action`. The call carries the interactive
/// authorization flag, so that polkit may ask the user for a password;
/// there is no time limit, since the user may be typing it.
async fn call(conn: &zbus::Connection, action: Action) -> Result<String, String> {
    let proxy = Health1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let flags = MethodFlags::ALLOW_INTERACTIVE_AUTH;
    let p = proxy.inner();
    let result = match action {
        Action::Rollback => p
            .call_with_flags::<_, _, HashMap<String, OwnedVariant>>("Rollback", flags, &())
            .await
            .map(|answer| rollback_words(&answer.unwrap_or_default())),
        Action::Dismiss => p
            .call_with_flags::<_, _, ()>("DismissRecovery", flags, &())
            .await
            .map(|_| "The record is dismissed.".to_string()),
        Action::Probe => p
            .call_with_flags::<_, _, bool>("Probe", flags, &())
            .await
            .map(|online| {
                if online == Some(true) {
                    "fail2ban answers."
                } else {
                    "fail2ban does not answer."
                }
                .to_string()
            }),
        Action::Confirm => p
            .call_with_flags::<_, _, ()>("Confirm", flags, &())
            .await
            .map(|_| "The trial's jail is kept.".to_string()),
        Action::Abort => p
            .call_with_flags::<_, _, ()>("Abort", flags, &())
            .await
            .map(|_| "The trial's jail is being rolled back.".to_string()),
        Action::ShowStatus | Action::Quit => return Ok(String::new()),
    };
    result.map_err(|e| failure_words(&e))
}

/// A call's error in words: the daemon's own errors by their short name
/// and message.
fn failure_words(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, message, _) => {
            let name = name.as_str();
            let short = name
                .strip_prefix(fail2ban_healthd::bus::ERROR_PREFIX)
                .and_then(|s| s.strip_prefix('.'))
                .unwrap_or(name);
            let what = match short {
                "NotAuthorized" => "Not authorized",
                "RollbackFailed" => "The rollback failed",
                "RollbackInProgress" => "A rollback is already running",
                "NoPendingRecovery" => "There is no record",
                "TrialInProgress" => "A trial is running",
                "NoTrial" => "No trial is running",
                "TryFailed" => "The trial could not start",
                _ => short,
            };
            model::clean(&format!(
                "{what}: {}",
                message.as_deref().unwrap_or_default()
            ))
        }
        other => model::clean(&format!("fail2ban-healthd could not be asked: {other}")),
    }
}

fn rollback_words(answer: &HashMap<String, OwnedVariant>) -> String {
    let text = |k: &str| {
        answer
            .get(k)
            .and_then(|v| <&str>::try_from(&**v).ok())
            .map(model::clean)
            .unwrap_or_default()
    };
    let online = answer.get("Online").and_then(|v| bool::try_from(&**v).ok()) == Some(true);
    let jails = answer
        .get("ActiveJails")
        .and_then(|v| u32::try_from(&**v).ok())
        .unwrap_or(0);
    let state = if online {
        format!("fail2ban is online with {jails} jails")
    } else {
        "fail2ban is not online yet".to_string()
    };
    format!(
        "{} is disabled in {}; {state}.",
        text("JailName"),
        text("DropInPath")
    )
}

/// Reads `LastProbeTimestamp` (it sends no change signal) into the model.
async fn refresh_probe_time(conn: zbus::Connection, tx: UnboundedSender<Input>) {
    let Ok(proxy) = Health1Proxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
    else {
        return;
    };
    if let Ok(t) = proxy.last_probe_timestamp().await {
        let props = HashMap::from([("LastProbeTimestamp".to_string(), OwnedVariant::from(t))]);
        let _ = tx.send(Input::Changed(props));
    }
}

/// Follows the daemon on its bus for as long as the applet runs:
/// reconnects to the bus when it goes away, with a growing pause.
async fn watch(bus: BusArgs, tx: UnboundedSender<Input>) {
    let mut pause = Duration::from_secs(1);
    loop {
        let result = follow(&bus, &tx).await;
        if tx.is_closed() {
            return;
        }
        let why = match result {
            Ok(()) => "the connection to the bus closed".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %why, "the daemon's bus cannot be reached; retrying in {pause:?}");
        let _ = tx.send(Input::Unreachable(why));
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// One connection's life: the daemon's name and properties, in the order
/// the bus delivers them, through one message stream.
async fn follow(bus: &BusArgs, tx: &UnboundedSender<Input>) -> zbus::Result<()> {
    let builder = match (&bus.bus_address, bus.bus.as_str()) {
        (Some(a), _) => zbus::connection::Builder::address(a.as_str()),
        (None, "session") => zbus::connection::Builder::session(),
        (None, _) => zbus::connection::Builder::system(),
    };
    let conn = builder.build().await?;
    let mut stream = zbus::MessageStream::from(&conn);
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    dbus.add_match_rule(
        zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender("org.freedesktop.DBus")
            .interface("org.freedesktop.DBus")
            .member("NameOwnerChanged")
            .arg(0, NAME)
            .build()?,
    )
    .await?;
    dbus.add_match_rule(
        zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(NAME)
            .path(PATH)
            .interface("org.freedesktop.DBus.Properties")
            .member("PropertiesChanged")
            .arg(0, INTERFACE)
            .build()?,
    )
    .await?;
    dbus.add_match_rule(
        zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(NAME)
            .path(PATH)
            .interface(INTERFACE)
            .member("TrialEnded")
            .build()?,
    )
    .await?;
    let _ = tx.send(Input::Connected(conn.clone()));

    let name = zbus::names::BusName::try_from(NAME)?;
    let mut owner: Option<String> = match dbus.get_name_owner(name).await {
        Ok(o) => Some(o.to_string()),
        Err(zbus::fdo::Error::NameHasNoOwner(_)) => None,
        Err(e) => return Err(e.into()),
    };
    match &owner {
        Some(o) => appeared(&conn, o, tx).await,
        None => {
            let _ = tx.send(Input::Gone);
        }
    }
    while let Some(msg) = stream.next().await {
        let Ok(msg) = msg else { continue };
        let header = msg.header();
        if header.message_type() != zbus::message::Type::Signal {
            continue;
        }
        let member = header.member().map(|m| m.as_str()).unwrap_or_default();
        let sender = header.sender().map(|s| s.as_str()).unwrap_or_default();
        match member {
            "NameOwnerChanged" if sender == "org.freedesktop.DBus" => {
                let Ok((n, _old, new)) = msg.body().deserialize::<(String, String, String)>()
                else {
                    continue;
                };
                if n != NAME {
                    continue;
                }
                if new.is_empty() {
                    owner = None;
                    let _ = tx.send(Input::Gone);
                } else {
                    owner = Some(new.clone());
                    appeared(&conn, &new, tx).await;
                }
            }
            "PropertiesChanged" if owner.as_deref() == Some(sender) => {
                if header.path().map(|p| p.as_str()) != Some(PATH) {
                    continue;
                }
                type Body = (String, HashMap<String, OwnedVariant>, Vec<String>);
                let Ok((iface, changed, invalidated)) = msg.body().deserialize::<Body>() else {
                    continue;
                };
                if iface != INTERFACE {
                    continue;
                }
                let _ = tx.send(Input::Changed(changed));
                if invalidated.is_empty() {
                    tokio::spawn(refresh_probe_time(conn.clone(), tx.clone()));
                } else if let Some(o) = owner.clone() {
                    appeared(&conn, &o, tx).await;
                }
            }
            "TrialEnded" if owner.as_deref() == Some(sender) => {
                if header.path().map(|p| p.as_str()) != Some(PATH)
                    || header.interface().map(|i| i.as_str()) != Some(INTERFACE)
                {
                    continue;
                }
                let Ok((jail, kept, cause)) = msg.body().deserialize::<(String, bool, u32)>()
                else {
                    continue;
                };
                let _ = tx.send(Input::TrialEnded(jail, kept, cause));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads every property from `owner` (its unique name, so that nothing
/// is started by bus activation) and hands them on as its appearance.
async fn appeared(conn: &zbus::Connection, owner: &str, tx: &UnboundedSender<Input>) {
    let props = async {
        let p = zbus::Proxy::new(
            conn,
            owner.to_owned(),
            PATH,
            "org.freedesktop.DBus.Properties",
        )
        .await?;
        p.call_with_flags::<_, _, HashMap<String, OwnedVariant>>(
            "GetAll",
            MethodFlags::NO_AUTO_START,
            &(INTERFACE,),
        )
        .await
    };
    match props.await {
        Ok(Some(props)) => {
            let _ = tx.send(Input::Appeared(props));
        }
        Ok(None) => {}
        Err(e) => {
            // It left again, or is not the daemon: wait for the next owner.
            tracing::warn!(error = %e, "the daemon's properties could not be read");
            let _ = tx.send(Input::Gone);
        }
    }
}
