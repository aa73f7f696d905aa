//! Sending messages to the desktop's notification server: one
//! notification per slot, each replacing the last of its slot.

use std::collections::HashMap;

use zbus::Variant;

use super::proxy::NotificationsProxy;
use super::{APP_NAME, Message, Slot, Urgency, escape};

/// Sends messages, remembering each slot's last id.
pub struct Notifier {
    proxy: Option<NotificationsProxy<'static>>,
    last: HashMap<Slot, u32>,
    /// The "went offline" notification still shown, if any: a crash
    /// record that follows takes its place.
    offline: Option<u32>,
}

impl Notifier {
    /// A notifier on `conn`, the session bus (`None`: none is reachable,
    /// every message is only logged).
    pub async fn new(conn: Option<&zbus::Connection>) -> Self {
        let proxy = match conn {
            Some(c) => NotificationsProxy::builder(c)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
                .ok(),
            None => None,
        };
        Notifier {
            proxy,
            last: HashMap::new(),
            offline: None,
        }
    }

    /// The proxy, to subscribe to clicks.
    pub fn proxy(&self) -> Option<&NotificationsProxy<'static>> {
        self.proxy.as_ref()
    }

    /// Shows `m`, replacing the last of its slot; returns its id.
    pub async fn send(&mut self, m: &Message) -> Option<u32> {
        tracing::info!(summary = %m.summary, body = %m.body, "notification");
        let proxy = self.proxy.as_ref()?;
        let markup = proxy
            .get_capabilities()
            .await
            .map(|c| c.iter().any(|c| c == "body-markup"))
            .unwrap_or(false);
        let body = if markup {
            escape(&m.body)
        } else {
            m.body.clone()
        };
        let actions: Vec<&str> = m
            .buttons
            .iter()
            .flat_map(|(k, l)| [*k, l.as_str()])
            .collect();
        let mut hints = HashMap::new();
        hints.insert("urgency", Variant::from(m.urgency as u8));
        hints.insert("desktop-entry", Variant::from("fail2ban-healthd-tray"));
        // The daemon publishes "offline" at once and the record when it
        // has attributed the failure: the record's notification replaces
        // the offline one, so that a crash leaves one notification.
        let takes_over = if m.replaces_offline {
            self.offline.take()
        } else {
            None
        };
        let replaces = takes_over
            .or_else(|| self.last.get(&m.slot).copied())
            .unwrap_or(0);
        // Critical ones stay until the user acts; the others go by
        // themselves after the server's default time.
        let expire = if m.urgency == Urgency::Critical {
            0
        } else {
            -1
        };
        match proxy
            .notify(
                APP_NAME, replaces, &m.icon, &m.summary, &body, &actions, hints, expire,
            )
            .await
        {
            Ok(id) => {
                self.last.insert(m.slot, id);
                if m.slot == Slot::Online {
                    self.offline = (m.urgency == Urgency::Critical).then_some(id);
                } else if takes_over.is_some() {
                    self.last.remove(&Slot::Online);
                }
                Some(id)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no notification could be shown");
                None
            }
        }
    }
}
