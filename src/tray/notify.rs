//! Desktop notifications over `org.freedesktop.Notifications` on the
//! session bus: a small zbus proxy, and the words of each notice.

use std::collections::HashMap;

use zbus::Variant;

use crate::model::{Action, Notice, Record};

/// `org.freedesktop.Notifications`, as far as the applet uses it.
#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
pub trait Notifications {
    /// Shows a notification; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Variant<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    /// What the server supports (`actions`, `body-markup`, ...).
    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    /// A button of a notification was clicked.
    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: &str) -> zbus::Result<()>;
}

/// The applet's name in notifications.
pub const APP_NAME: &str = "fail2ban-healthd";

/// How urgent a notification is (the `urgency` hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Normal.
    Normal = 1,
    /// Critical: stays until the user acts.
    Critical = 2,
}

/// Which slot a notification takes: a new one replaces the previous one
/// of its slot, so that a flapping fail2ban leaves one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Offline, back online.
    Online,
    /// A crash record and its resolution.
    Record,
    /// Results of the user's actions, and the status text.
    Answer,
}

/// One notification, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The slot it takes.
    pub slot: Slot,
    /// Its first line.
    pub summary: String,
    /// The rest.
    pub body: String,
    /// Its buttons: (key, label).
    pub buttons: Vec<(&'static str, String)>,
    /// How urgent.
    pub urgency: Urgency,
    /// The icon-theme name.
    pub icon: String,
}

/// The button keys of a crash notification.
pub const ROLLBACK_KEY: &str = "rollback";
/// See [`ROLLBACK_KEY`].
pub const DISMISS_KEY: &str = "dismiss";

/// The notification for a notice.
pub fn message(notice: &Notice) -> Message {
    use crate::icon::theme_name;
    use crate::model::Colour;
    match notice {
        Notice::Crash { record } => Message {
            slot: Slot::Record,
            summary: format!("fail2ban crash after enabling jail {}", record.jail),
            body: crash_body(record),
            buttons: buttons(record),
            urgency: Urgency::Critical,
            icon: theme_name(Colour::Red),
        },
        Notice::Resolved { record } => Message {
            slot: Slot::Record,
            // It replaces the crash's notification: the buttons stay while
            // the jail can still be rolled back.
            buttons: buttons(record),
            summary: format!("fail2ban recovered from the crash of jail {}", record.jail),
            body: if record.rolled_back {
                format!(
                    "{} was rolled back; fail2ban is healthy again.",
                    record.jail
                )
            } else {
                "fail2ban is healthy again. The record stays until it is dismissed.".to_string()
            },
            urgency: Urgency::Normal,
            icon: theme_name(Colour::Amber),
        },
        Notice::WentOffline { reason } => Message {
            slot: Slot::Online,
            summary: "fail2ban went offline".into(),
            body: format!("{reason}. The machine is not protected until it is back."),
            buttons: Vec::new(),
            urgency: Urgency::Critical,
            icon: theme_name(Colour::Red),
        },
        Notice::CameOnline { version, jails } => Message {
            slot: Slot::Online,
            summary: "fail2ban is back online".into(),
            body: format!(
                "fail2ban {version} runs {jails} {}.",
                if *jails == 1 { "jail" } else { "jails" }
            ),
            buttons: Vec::new(),
            urgency: Urgency::Normal,
            icon: theme_name(Colour::Green),
        },
    }
}

/// A record's buttons: Roll back while the daemon would do it, Dismiss.
fn buttons(r: &Record) -> Vec<(&'static str, String)> {
    let mut buttons = Vec::new();
    if r.may_roll_back() {
        buttons.push((ROLLBACK_KEY, format!("Roll back {}", r.jail)));
    }
    buttons.push((DISMISS_KEY, "Dismiss".to_string()));
    buttons
}

fn crash_body(r: &Record) -> String {
    let mut body = format!("{}.", r.cause_words());
    body.push_str(&format!(
        "\nDetected {} after the activation of {}.",
        crate::model::span(r.detected_at.saturating_sub(r.activated_at)),
        r.jail
    ));
    if r.suspects.len() > 1 {
        body.push_str(&format!("\nSuspects: {}.", r.suspects.join(", ")));
    }
    if !r.may_roll_back() && r.ran_before {
        body.push_str(&format!(
            "\n{} ran before its activation, so it is not rolled back.",
            r.jail
        ));
    }
    body
}

/// What an action's answer says.
pub fn answer(action: Action, result: &Result<String, String>) -> Message {
    use crate::icon::theme_name;
    use crate::model::Colour;
    match result {
        Ok(text) => Message {
            slot: Slot::Answer,
            summary: match action {
                Action::Rollback => "Rolled back".to_string(),
                Action::ShowStatus => "fail2ban status".to_string(),
                other => format!("{} done", other.words()),
            },
            body: text.clone(),
            buttons: Vec::new(),
            urgency: Urgency::Normal,
            icon: theme_name(Colour::Green),
        },
        Err(why) => Message {
            slot: Slot::Answer,
            summary: format!("{} failed", action.words()),
            body: why.clone(),
            buttons: Vec::new(),
            urgency: Urgency::Normal,
            icon: theme_name(Colour::Amber),
        },
    }
}

/// Escapes text for servers that read the body as markup.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

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
        let takes_over = if m.slot == Slot::Record && m.urgency == Urgency::Critical {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ran_before: bool) -> Record {
        Record {
            jail: "beta".into(),
            activated_at: 1_000_000,
            detected_at: 3_000_000,
            cause: 1,
            offline_reason: 3,
            suspects: vec!["beta".into(), "gamma".into()],
            ran_before,
            ..Record::default()
        }
    }

    #[test]
    fn a_crash_is_critical_names_the_jail_and_offers_rollback_and_dismiss() {
        let m = message(&Notice::Crash {
            record: record(false),
        });
        assert_eq!(m.urgency, Urgency::Critical);
        assert!(m.summary.contains("beta"), "{m:?}");
        assert!(
            m.body.contains("connection refused") && m.body.contains("Suspects: beta, gamma"),
            "{m:?}"
        );
        assert_eq!(
            m.buttons,
            [
                (ROLLBACK_KEY, "Roll back beta".to_string()),
                (DISMISS_KEY, "Dismiss".to_string())
            ]
        );
        let m = message(&Notice::Crash {
            record: record(true),
        });
        assert_eq!(m.buttons, [(DISMISS_KEY, "Dismiss".to_string())]);
        assert!(m.body.contains("not rolled back"), "{m:?}");
    }

    #[test]
    fn answers_say_what_failed_in_words() {
        let m = answer(Action::Rollback, &Err("NotAuthorized: not allowed".into()));
        assert_eq!(m.summary, "Roll back failed");
        assert_eq!(m.body, "NotAuthorized: not allowed");
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
