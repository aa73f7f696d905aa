//! An action as a call to the daemon, and its answer (or its failure)
//! in words for the user.

use std::collections::HashMap;

use zbus::OwnedVariant;
use zbus::proxy::MethodFlags;

use fail2ban_healthd::bus::proxy::Health1Proxy;

use crate::model::{self, Action};

/// Calls the daemon for `action`. The call carries the interactive
/// authorization flag, so that polkit may ask the user for a password;
/// there is no time limit, since the user may be typing it.
pub async fn call(conn: &zbus::Connection, action: Action) -> Result<String, String> {
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
