//! What the item shows, derived from the model: the icon's colour, the
//! tooltip, the menu with each action enabled when the daemon would take
//! it now, and the status text.

use chrono::{DateTime, Utc};

use super::words::{ago, clock, list, reason_words, span, when};
use super::{Action, Model, Record, Snapshot, Trial};

/// At most this many jails in the status text.
const MAX_JAILS: usize = 30;

/// The icon's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    /// Online, nothing pending.
    Green,
    /// A resolved record still shown, or fail2ban just came back.
    Amber,
    /// Offline, or an unresolved record.
    Red,
    /// The daemon is not on the bus (or has not probed yet).
    Grey,
}

impl Colour {
    /// The state in one word, as in the icon-theme names.
    pub fn word(self) -> &'static str {
        match self {
            Colour::Green => "ok",
            Colour::Amber => "warning",
            Colour::Red => "error",
            Colour::Grey => "unknown",
        }
    }
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A line of text, not clickable.
    Text(String),
    /// A separator.
    Separator,
    /// A clickable action.
    Item {
        /// What it says.
        label: String,
        /// What it does.
        action: Action,
        /// Whether it can be clicked now.
        enabled: bool,
    },
}

/// Everything the item shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The icon's colour.
    pub colour: Colour,
    /// `NeedsAttention` (red) or `Active`.
    pub attention: bool,
    /// The tooltip's title: the state in a few words.
    pub title: String,
    /// The tooltip's lines.
    pub lines: Vec<String>,
    /// The menu.
    pub menu: Vec<Entry>,
}

impl Model {
    /// The icon's colour now.
    pub fn colour(&self, now: DateTime<Utc>) -> Colour {
        let Some(s) = &self.daemon else {
            return Colour::Grey;
        };
        if !s.probed() {
            return Colour::Grey;
        }
        match &s.record {
            _ if !s.online => Colour::Red,
            Some(r) if !r.recovered => Colour::Red,
            Some(_) => Colour::Amber,
            None if s.trial.is_some() || self.next_change(now).is_some() => Colour::Amber,
            None => Colour::Green,
        }
    }

    /// What the item shows now.
    pub fn view(&self, now: DateTime<Utc>) -> View {
        let colour = self.colour(now);
        let (title, lines) = self.tooltip(now);
        let menu = self.menu(&lines);
        View {
            colour,
            attention: colour == Colour::Red,
            title,
            lines,
            menu,
        }
    }

    /// The tooltip's title and lines (the lines also head the menu).
    fn tooltip(&self, now: DateTime<Utc>) -> (String, Vec<String>) {
        match (&self.daemon, &self.unreachable) {
            (None, Some(why)) => (
                "fail2ban-healthd: the bus cannot be reached".to_string(),
                vec![format!("cannot reach the bus: {why}; retrying")],
            ),
            (None, None) => (
                "fail2ban-healthd is not running".to_string(),
                vec![
                    "fail2ban-healthd is not on the bus; this applet reconnects when it starts"
                        .into(),
                ],
            ),
            (Some(s), _) if !s.probed() => (
                "fail2ban: not probed yet".to_string(),
                vec!["fail2ban-healthd has started and not probed fail2ban yet".into()],
            ),
            (Some(s), _) => self.probed_tooltip(s, now),
        }
    }

    /// The tooltip once the daemon has probed: fail2ban's state, then the
    /// running trial and the record, if any.
    fn probed_tooltip(&self, s: &Snapshot, now: DateTime<Utc>) -> (String, Vec<String>) {
        let mut lines = Vec::new();
        let probed = if s.last_probe == 0 {
            String::new()
        } else {
            format!(", probed {}", ago(s.last_probe, now))
        };
        let mut title;
        if s.online {
            title = format!("fail2ban {} online", s.version);
            lines.push(format!(
                "fail2ban {} online: {} {}{probed}",
                s.version,
                s.active_jails,
                if s.active_jails == 1 { "jail" } else { "jails" }
            ));
            if self.next_change(now).is_some() {
                lines.push("fail2ban has just come back".into());
            }
        } else {
            title = "fail2ban offline".to_string();
            lines.push(format!(
                "fail2ban offline: {}{probed}",
                reason_words(s.offline_reason)
            ));
        }
        if let Some(t) = &s.trial {
            if s.online {
                title = format!("{title}, trying {}", t.jail);
            }
            lines.push(trial_line(t, s.record.as_ref(), now));
        }
        if let Some(r) = &s.record {
            lines.extend(record_lines(r, now));
        }
        (title, lines)
    }

    /// The menu: the tooltip's lines, then the actions.
    fn menu(&self, lines: &[String]) -> Vec<Entry> {
        let mut menu: Vec<Entry> = lines.iter().cloned().map(Entry::Text).collect();
        menu.push(Entry::Separator);
        menu.extend(self.trial_entries());
        menu.extend(self.rollback_entry());
        menu.extend(self.fixed_entries());
        menu.push(Entry::Separator);
        menu.push(Entry::Item {
            label: "Quit".into(),
            action: Action::Quit,
            enabled: true,
        });
        menu
    }

    /// Keep the running trial's jail, or roll it back now; none without a
    /// trial. Both stay disabled while the daemon rolls it back.
    fn trial_entries(&self) -> Vec<Entry> {
        let Some(t) = self.trial() else {
            return Vec::new();
        };
        let idle = self.busy.is_none();
        let rolling_back = self.trial_rolling_back();
        let keep = if self.busy == Some(Action::Confirm) {
            format!("Keeping {}…", t.jail)
        } else {
            format!("Keep {}", t.jail)
        };
        let abort = if self.busy == Some(Action::Abort) || rolling_back {
            format!("Rolling back {}…", t.jail)
        } else {
            format!("Roll back {} now", t.jail)
        };
        [(keep, Action::Confirm), (abort, Action::Abort)]
            .into_iter()
            .map(|(label, action)| Entry::Item {
                label,
                action,
                enabled: idle && !rolling_back,
            })
            .collect()
    }

    /// Roll back the record's jail, when the daemon would.
    fn rollback_entry(&self) -> Option<Entry> {
        let r = self.offers_rollback()?;
        let label = if self.busy == Some(Action::Rollback) {
            format!("Rolling back {}…", r.jail)
        } else {
            format!("Roll back {}", r.jail)
        };
        Some(Entry::Item {
            label,
            action: Action::Rollback,
            enabled: self.busy.is_none(),
        })
    }

    /// Dismiss, Probe now and Show status: always there, enabled as the
    /// daemon allows.
    fn fixed_entries(&self) -> [Entry; 3] {
        // The running trial's record is the daemon's to roll back; it
        // refuses a dismissal meanwhile.
        let dismissable = self
            .record()
            .is_some_and(|r| !self.trial().is_some_and(|t| t.owns(r)));
        [
            Entry::Item {
                label: "Dismiss".into(),
                action: Action::Dismiss,
                enabled: self.busy.is_none() && dismissable,
            },
            Entry::Item {
                label: "Probe now".into(),
                action: Action::Probe,
                enabled: self.daemon.is_some() && self.busy != Some(Action::Probe),
            },
            Entry::Item {
                label: "Show status".into(),
                action: Action::ShowStatus,
                enabled: true,
            },
        ]
    }

    /// The status text: the view's lines, then every jail's counters.
    pub fn status_text(&self, now: DateTime<Utc>) -> String {
        let mut out = self.view(now).lines.join("\n");
        if let Some(s) = self.daemon.as_ref().filter(|s| s.online) {
            for (name, failed, _, banned, total_banned) in s.jails.iter().take(MAX_JAILS) {
                out.push_str(&format!(
                    "\n{name}: {banned} banned ({total_banned} in all), {failed} failing"
                ));
            }
            if s.jails.len() > MAX_JAILS {
                out.push_str(&format!("\nand {} more jails", s.jails.len() - MAX_JAILS));
            }
        }
        out
    }
}

/// The running trial in one line.
pub fn trial_line(t: &Trial, record: Option<&Record>, now: DateTime<Utc>) -> String {
    if record.is_some_and(|r| t.owns(r) && !r.rolled_back) {
        return format!(
            "Trial of {} failed: fail2ban-healthd rolls it back automatically",
            t.jail
        );
    }
    let now_us = u64::try_from(now.timestamp_micros()).unwrap_or(0);
    if t.deadline_at != 0 && t.deadline_at <= now_us {
        return format!(
            "Trying {}: its deadline {} has passed, the daemon is judging it",
            t.jail,
            clock(t.deadline_at, now)
        );
    }
    format!("Trying {} until {}", t.jail, clock(t.deadline_at, now))
}

/// The record in lines: what, when, suspects, how it ended.
pub fn record_lines(r: &Record, now: DateTime<Utc>) -> Vec<String> {
    let mut lines = vec![
        format!("Crash attributed to jail {}: {}", r.jail, r.cause_words()),
        format!(
            "detected {}, {} after its activation",
            when(r.detected_at, now),
            span(r.detected_at.saturating_sub(r.activated_at))
        ),
        format!("suspects: {}", list(&r.suspects)),
    ];
    let rolled = if r.auto_rolled_back {
        "rolled back automatically (trial)"
    } else {
        "rolled back"
    };
    let state = match (r.recovered, r.rolled_back) {
        (true, true) => format!("{rolled}; resolved {}", when(r.recovered_at, now)),
        (true, false) => format!("resolved {}", when(r.recovered_at, now)),
        (false, true) => format!("{rolled}; not resolved yet"),
        (false, false) => "not resolved".to_string(),
    };
    lines.push(state);
    if r.ran_before && !r.rolled_back {
        lines.push(format!(
            "{} ran before its activation: it is not rolled back",
            r.jail
        ));
    }
    lines
}
