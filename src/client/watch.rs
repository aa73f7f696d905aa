//! `watch`: the daemon's signals, one line (or one JSON object) each, as
//! they arrive.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::connect::{BusArgs, Failure, connect, unreachable};
use super::values::{Dict, cause_name, clean, reason_name, to_json};
use crate::bus::{INTERFACE, NAME, PATH};

/// One received signal, as a JSON object `{time_usec, signal, args}`.
fn signal_json(msg: &zbus::Message) -> Option<Value> {
    let header = msg.header();
    let member = header.member()?.as_str().to_owned();
    let body = msg.body();
    let args = match member.as_str() {
        "CameOnline" => {
            let (version,): (String,) = body.deserialize().ok()?;
            json!({ "version": clean(&version) })
        }
        "WentOffline" => {
            let (reason,): (u32,) = body.deserialize().ok()?;
            json!({ "reason": reason, "reason_name": reason_name(reason) })
        }
        "ActivationCrashDetected" => {
            let (jail, activated_at, detected_at, cause): (String, u64, u64, u32) =
                body.deserialize().ok()?;
            json!({
                "jail_name": clean(&jail),
                "activated_at": activated_at,
                "detected_at": detected_at,
                "cause": cause,
                "cause_name": cause_name(cause),
            })
        }
        "RecoveryResolved" => {
            let (jail, recovered_at): (String, u64) = body.deserialize().ok()?;
            json!({ "jail_name": clean(&jail), "recovered_at": recovered_at })
        }
        "TrialEnded" => {
            let (jail, kept, cause): (String, bool, u32) = body.deserialize().ok()?;
            json!({
                "jail_name": clean(&jail),
                "kept": kept,
                "cause": cause,
                "cause_name": if cause == 0 { "" } else { cause_name(cause) },
            })
        }
        "PropertiesChanged" => {
            let (interface, changed, invalidated): (String, Dict, Vec<String>) =
                body.deserialize().ok()?;
            if interface != INTERFACE {
                return None;
            }
            let mut map = serde_json::Map::new();
            let mut names: Vec<_> = changed.keys().collect();
            names.sort();
            for name in names {
                map.insert(clean(name), to_json(&changed[name]));
            }
            let invalidated: Vec<String> = invalidated.iter().map(|s| clean(s)).collect();
            json!({ "changed": map, "invalidated": invalidated })
        }
        _ => return None,
    };
    let now = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
    Some(json!({ "time_usec": now, "signal": member, "args": args }))
}

/// The readable line of a signal's JSON: time, name, `key=value`s.
fn signal_line(v: &Value) -> String {
    let at = v["time_usec"]
        .as_u64()
        .and_then(|t| DateTime::<Utc>::from_timestamp_micros(i64::try_from(t).ok()?))
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let mut out = format!("{at}  {:<24}", v["signal"].as_str().unwrap_or(""));
    let args = if v["signal"] == "PropertiesChanged" {
        &v["args"]["changed"]
    } else {
        &v["args"]
    };
    if let Some(map) = args.as_object() {
        for (k, val) in map {
            let _ = write!(out, " {k}={val}");
        }
    }
    out.trim_end().to_owned()
}

/// `watch`: one line per signal of the daemon, until interrupted or the
/// bus goes away.
///
/// # Errors
/// The bus could not be reached or was lost.
pub async fn watch(bus: &BusArgs, as_json: bool) -> Result<u8, Failure> {
    let (conn, p) = connect(bus).await?;
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination(NAME)
        .path(PATH)
        .build()
        .await
        .map_err(|e| unreachable(bus, &e))?;
    let own = p
        .inner()
        .receive_all_signals()
        .await
        .map_err(|e| unreachable(bus, &e))?;
    let changes = props
        .inner()
        .receive_all_signals()
        .await
        .map_err(|e| unreachable(bus, &e))?;
    eprintln!(
        "watching fail2ban-healthd on {} (Ctrl-C stops)",
        bus.describe()
    );
    let mut all = futures_util::stream::select(own, changes);
    let mut closed = std::pin::pin!(async { conn.closed().await });
    loop {
        tokio::select! {
            msg = all.next() => {
                let Some(msg) = msg else { break };
                if let Some(v) = signal_json(&msg) {
                    if as_json {
                        println!("{v}");
                    } else {
                        println!("{}", signal_line(&v));
                    }
                }
            }
            () = &mut closed => break,
        }
    }
    Err(Failure {
        message: format!("lost the connection to {}", bus.describe()),
        status: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_lines_are_short() {
        let v = json!({
            "time_usec": 1_790_000_000_123_456u64,
            "signal": "WentOffline",
            "args": { "reason": 2, "reason_name": "socket_missing" },
        });
        let line = signal_line(&v);
        let expected = format!(
            "{:<24} reason=2 reason_name=\"socket_missing\"",
            "WentOffline"
        );
        assert!(line.ends_with(&expected), "{line}");
        assert!(line.starts_with("14:13:20.123  "), "{line}");
    }
}
