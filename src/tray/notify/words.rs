//! The words of each notice and of each action's answer: which slot, how
//! urgent, which buttons. Pure.

use super::{DISMISS_KEY, Message, ROLLBACK_KEY, Slot, Urgency};
use crate::icon::theme_name;
use crate::model::{Action, Colour, Notice, Record};

/// The notification for a notice.
pub fn message(notice: &Notice) -> Message {
    match notice {
        Notice::Crash { record } => crash(record),
        Notice::Resolved { record } => resolved(record),
        Notice::WentOffline { reason } => went_offline(reason),
        Notice::CameOnline { version, jails } => came_online(version, *jails),
        Notice::TrialFailed { record } => trial_failed(record),
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

/// A new record: critical, with its buttons.
fn crash(record: &Record) -> Message {
    Message {
        slot: Slot::Record,
        summary: format!("fail2ban crash after enabling jail {}", record.jail),
        body: crash_body(record),
        buttons: buttons(record),
        urgency: Urgency::Critical,
        icon: theme_name(Colour::Red),
        replaces_offline: true,
    }
}

/// The record's failure cleared.
fn resolved(record: &Record) -> Message {
    Message {
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
    }
}

fn went_offline(reason: &str) -> Message {
    Message {
        slot: Slot::Online,
        summary: "fail2ban went offline".into(),
        body: format!("{reason}. The machine is not protected until it is back."),
        buttons: Vec::new(),
        urgency: Urgency::Critical,
        icon: theme_name(Colour::Red),
        replaces_offline: false,
    }
}

fn came_online(version: &str, jails: u32) -> Message {
    Message {
        slot: Slot::Online,
        summary: "fail2ban is back online".into(),
        body: format!(
            "fail2ban {version} runs {jails} {}.",
            if jails == 1 { "jail" } else { "jails" }
        ),
        buttons: Vec::new(),
        urgency: Urgency::Normal,
        icon: theme_name(Colour::Green),
        replaces_offline: false,
    }
}

/// A failure of the running trial: no buttons, since the daemon rolls
/// the jail back by itself.
fn trial_failed(record: &Record) -> Message {
    Message {
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
