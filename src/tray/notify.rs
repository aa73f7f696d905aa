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
    /// A trial's failure and its end.
    Trial,
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
    /// It starts the story of a failure: it takes the place of the "went
    /// offline" notification still shown, if any.
    pub replaces_offline: bool,
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
            replaces_offline: true,
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
            replaces_offline: false,
        },
        Notice::WentOffline { reason } => Message {
            slot: Slot::Online,
            summary: "fail2ban went offline".into(),
            body: format!("{reason}. The machine is not protected until it is back."),
            buttons: Vec::new(),
            urgency: Urgency::Critical,
            icon: theme_name(Colour::Red),
            replaces_offline: false,
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
            replaces_offline: false,
        },
        Notice::TrialFailed { record } => Message {
            slot: Slot::Trial,
            summary: format!(
                "Trial of jail {} failed: rolling back automatically",
                record.jail
            ),
            body: format!(
                "{}.\nDetected {} after the trial started; fail2ban-healthd rolls {} back by itself.",
                record.cause_words(),
                crate::model::span(record.detected_at.saturating_sub(record.activated_at)),
                record.jail
            ),
            buttons: Vec::new(),
            urgency: Urgency::Critical,
            icon: theme_name(Colour::Red),
            replaces_offline: true,
        },
        Notice::TrialEnded {
            jail,
            kept,
            cause,
            record,
            online,
            state,
        } => trial_ended(jail, *kept, *cause, record.as_ref(), *online, state),
    }
}

/// The end of a trial, in the place of its failure's notice if any.
fn trial_ended(
    jail: &str,
    kept: bool,
    cause: u32,
    record: Option<&Record>,
    online: bool,
    state: &str,
) -> Message {
    use crate::icon::theme_name;
    use crate::model::Colour;
    let healthy = if online { Colour::Green } else { Colour::Red };
    if kept {
        return Message {
            slot: Slot::Trial,
            summary: format!("{jail} kept: fail2ban stayed healthy"),
            body: format!("The trial of {jail} has ended and the jail stays enabled. {state}."),
            buttons: Vec::new(),
            urgency: Urgency::Normal,
            icon: theme_name(healthy),
            replaces_offline: false,
        };
    }
    if cause == 0 {
        return Message {
            slot: Slot::Trial,
            summary: format!("Trial of {jail} aborted, rolled back"),
            body: format!("{jail} is disabled again, as before the trial. {state}."),
            buttons: Vec::new(),
            urgency: Urgency::Normal,
            icon: theme_name(healthy),
            replaces_offline: false,
        };
    }
    let what = record.map_or_else(
        || crate::model::cause_code_words(cause),
        Record::cause_words,
    );
    let done = match record {
        Some(r) if !r.rolled_back => format!(
            "The automatic rollback of {jail} did not complete: roll it back from the menu."
        ),
        _ => format!("fail2ban-healthd rolled {jail} back by itself."),
    };
    Message {
        slot: Slot::Trial,
        summary: format!("Trial of {jail} failed and was rolled back"),
        body: format!("{what}.\n{done}\n{state}."),
        buttons: record.map(buttons).unwrap_or_default(),
        urgency: Urgency::Critical,
        icon: theme_name(Colour::Red),
        replaces_offline: false,
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
            replaces_offline: false,
        },
        Err(why) => Message {
            slot: Slot::Answer,
            summary: format!("{} failed", action.words()),
            body: why.clone(),
            buttons: Vec::new(),
            urgency: Urgency::Normal,
            icon: theme_name(Colour::Amber),
            replaces_offline: false,
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

    fn ended(kept: bool, cause: u32, record: Option<Record>) -> Message {
        message(&Notice::TrialEnded {
            jail: "gamma".into(),
            kept,
            cause,
            record,
            online: true,
            state: "fail2ban 1.0.2 is online with 3 jails".into(),
        })
    }

    #[test]
    fn a_trials_story_is_one_slot_and_its_failure_offers_no_manual_rollback() {
        let failing = Record {
            jail: "gamma".into(),
            cause: 2,
            ..record(false)
        };
        let m = message(&Notice::TrialFailed {
            record: failing.clone(),
        });
        assert_eq!((m.slot, m.urgency), (Slot::Trial, Urgency::Critical));
        assert!(m.summary.contains("rolling back automatically"), "{m:?}");
        assert!(m.buttons.is_empty(), "{m:?}");
        assert!(m.replaces_offline);

        let kept = ended(true, 0, None);
        assert_eq!((kept.slot, kept.urgency), (Slot::Trial, Urgency::Normal));
        assert_eq!(kept.summary, "gamma kept: fail2ban stayed healthy");
        assert!(kept.buttons.is_empty() && !kept.replaces_offline);

        let aborted = ended(false, 0, None);
        assert_eq!(aborted.urgency, Urgency::Normal);
        assert_eq!(aborted.summary, "Trial of gamma aborted, rolled back");
        assert!(aborted.body.contains("online with 3 jails"), "{aborted:?}");

        let rolled = Record {
            rolled_back: true,
            auto_rolled_back: true,
            ..failing.clone()
        };
        let failed = ended(false, 2, Some(rolled));
        assert_eq!(
            (failed.slot, failed.urgency),
            (Slot::Trial, Urgency::Critical)
        );
        assert!(
            failed.body.contains("the jail is not running")
                && failed.body.contains("rolled gamma back by itself")
                && failed
                    .body
                    .contains("fail2ban 1.0.2 is online with 3 jails"),
            "{failed:?}"
        );
        assert_eq!(failed.buttons, [(DISMISS_KEY, "Dismiss".to_string())]);
        assert!(!failed.replaces_offline);
        // Without the record, the cause code in words.
        let failed = ended(false, 3, None);
        assert!(
            failed.body.starts_with("jails that ran before disappeared"),
            "{failed:?}"
        );
        assert!(failed.buttons.is_empty());
        // An automatic rollback that did not complete: the manual one is
        // offered, since the trial is over.
        let failed = ended(false, 2, Some(failing));
        assert!(failed.body.contains("did not complete"), "{failed:?}");
        assert_eq!(
            failed.buttons[0],
            (ROLLBACK_KEY, "Roll back gamma".to_string())
        );
    }

    #[test]
    fn answers_say_what_failed_in_words() {
        let m = answer(Action::Rollback, &Err("NotAuthorized: not allowed".into()));
        assert_eq!(m.summary, "Roll back failed");
        assert_eq!(m.body, "NotAuthorized: not allowed");
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
