//! The watcher: follows the daemon on its bus and turns its traffic
//! (its name's owner, `PropertiesChanged`, `TrialEnded`) into
//! [`Input`]s for the owner loop, reconnecting when the bus goes away.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc::UnboundedSender;
use zbus::OwnedVariant;
use zbus::proxy::MethodFlags;

use fail2ban_healthd::bus::proxy::Health1Proxy;
use fail2ban_healthd::bus::{INTERFACE, NAME, PATH};
use fail2ban_healthd::client::BusArgs;

use crate::Input;

/// The bus daemon's own name, the sender of `NameOwnerChanged`.
const BUS_DAEMON: &str = "org.freedesktop.DBus";

/// Follows the daemon on its bus for as long as the applet runs:
/// reconnects to the bus when it goes away, with a growing pause.
pub async fn watch(bus: BusArgs, tx: UnboundedSender<Input>) {
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
    let conn = connect(bus).await?;
    // The stream exists before the match rules and the owner is asked
    // after them, so that no change between the two is missed.
    let mut stream = zbus::MessageStream::from(&conn);
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    subscribe(&dbus).await?;
    let _ = tx.send(Input::Connected(conn.clone()));

    let mut daemon = Followed {
        owner: current_owner(&dbus).await?,
        conn,
        tx,
    };
    match daemon.owner.clone() {
        Some(o) => appeared(&daemon.conn, &o, tx).await,
        None => {
            let _ = tx.send(Input::Gone);
        }
    }
    while let Some(msg) = stream.next().await {
        let Ok(msg) = msg else { continue };
        daemon.on_message(&msg).await;
    }
    Ok(())
}

/// A connection to the bus the daemon is on.
async fn connect(bus: &BusArgs) -> zbus::Result<zbus::Connection> {
    let builder = match (&bus.bus_address, bus.bus.as_str()) {
        (Some(a), _) => zbus::connection::Builder::address(a.as_str()),
        (None, "session") => zbus::connection::Builder::session(),
        (None, _) => zbus::connection::Builder::system(),
    };
    builder.build().await
}

/// Asks the bus for the daemon's name changes and its two signals.
async fn subscribe(dbus: &zbus::fdo::DBusProxy<'_>) -> zbus::Result<()> {
    dbus.add_match_rule(
        zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(BUS_DAEMON)
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
    Ok(())
}

/// The daemon's unique name now, `None` while it is not on the bus.
async fn current_owner(dbus: &zbus::fdo::DBusProxy<'_>) -> zbus::Result<Option<String>> {
    let name = zbus::names::BusName::try_from(NAME)?;
    match dbus.get_name_owner(name).await {
        Ok(o) => Ok(Some(o.to_string())),
        Err(zbus::fdo::Error::NameHasNoOwner(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The daemon as one connection follows it.
struct Followed<'a> {
    conn: zbus::Connection,
    tx: &'a UnboundedSender<Input>,
    /// The daemon's unique name while it is on the bus; signals count
    /// only from it.
    owner: Option<String>,
}

impl Followed<'_> {
    /// One message of the connection's stream; only signals matter.
    async fn on_message(&mut self, msg: &zbus::Message) {
        let header = msg.header();
        if header.message_type() != zbus::message::Type::Signal {
            return;
        }
        let member = header.member().map(|m| m.as_str()).unwrap_or_default();
        let sender = header.sender().map(|s| s.as_str()).unwrap_or_default();
        let from_daemon = self.owner.as_deref() == Some(sender);
        match member {
            "NameOwnerChanged" if sender == BUS_DAEMON => self.name_owner_changed(msg).await,
            "PropertiesChanged" if from_daemon => self.properties_changed(msg).await,
            "TrialEnded" if from_daemon => self.trial_ended(msg),
            _ => {}
        }
    }

    /// The daemon's name changed hands: it left, or (re)appeared.
    async fn name_owner_changed(&mut self, msg: &zbus::Message) {
        let Ok((n, _old, new)) = msg.body().deserialize::<(String, String, String)>() else {
            return;
        };
        if n != NAME {
            return;
        }
        if new.is_empty() {
            self.owner = None;
            let _ = self.tx.send(Input::Gone);
        } else {
            self.owner = Some(new.clone());
            appeared(&self.conn, &new, self.tx).await;
        }
    }

    /// One step of the daemon's state.
    async fn properties_changed(&self, msg: &zbus::Message) {
        if msg.header().path().map(|p| p.as_str()) != Some(PATH) {
            return;
        }
        type Body = (String, HashMap<String, OwnedVariant>, Vec<String>);
        let Ok((iface, changed, invalidated)) = msg.body().deserialize::<Body>() else {
            return;
        };
        if iface != INTERFACE {
            return;
        }
        let _ = self.tx.send(Input::Changed(changed));
        if invalidated.is_empty() {
            tokio::spawn(refresh_probe_time(self.conn.clone(), self.tx.clone()));
        } else if let Some(o) = &self.owner {
            appeared(&self.conn, o, self.tx).await;
        }
    }

    /// The daemon's `TrialEnded`.
    fn trial_ended(&self, msg: &zbus::Message) {
        let header = msg.header();
        if header.path().map(|p| p.as_str()) != Some(PATH)
            || header.interface().map(|i| i.as_str()) != Some(INTERFACE)
        {
            return;
        }
        let Ok((jail, kept, cause)) = msg.body().deserialize::<(String, bool, u32)>() else {
            return;
        };
        let _ = self.tx.send(Input::TrialEnded(jail, kept, cause));
    }
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

/// Reads `LastProbeTimestamp` (it sends no change signal) into the model.
pub async fn refresh_probe_time(conn: zbus::Connection, tx: UnboundedSender<Input>) {
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
