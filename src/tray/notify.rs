//! Desktop notifications over `org.freedesktop.Notifications` on the
//! session bus: what a notification is ([`Message`]), the words of each
//! notice (`words`), and sending them (`sender`, through the proxy in
//! `proxy`).

mod proxy;
mod sender;
mod words;

pub use sender::Notifier;
pub use words::{answer, escape, message};

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
