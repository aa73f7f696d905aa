//! `status`: every property in one `GetAll`, shown as aligned text or as
//! the JSON object documented in the README.

use std::fmt::Write as _;

use chrono::Utc;
use serde_json::{Value, json};
use zbus::OwnedVariant;

use super::connect::{BusArgs, Failure, call_failed, connect};
use super::table;
use super::values::{Dict, clean, field, reason_name, record_json, strings, text, time};
use crate::bus::{INTERFACE, NAME, PATH};
use crate::health::JailStats;

/// Everything `status` shows, read property by property.
struct Status {
    online: bool,
    reason: u32,
    version: String,
    jails: Vec<JailStats>,
    last_probe: u64,
    activation: Dict,
    record: Dict,
    trial: Dict,
    interval: u64,
    window: u64,
    socket: String,
}

/// All properties in one `GetAll`, so that they come from one moment.
async fn read_status(conn: &zbus::Connection) -> zbus::Result<Status> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(NAME)
        .path(PATH)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    let interface = zbus::names::InterfaceName::try_from(INTERFACE)?;
    let all: Dict = props.get_all(interface).await?;
    let take = |key: &str| -> zbus::Result<OwnedVariant> {
        all.get(key)
            .ok_or_else(|| zbus::Error::Failure(format!("the daemon did not send {key}")))?
            .try_clone()
    };
    fn typed<T: TryFrom<OwnedVariant>>(key: &str, v: OwnedVariant) -> zbus::Result<T> {
        T::try_from(v).map_err(|_| zbus::Error::Failure(format!("{key} has an unexpected type")))
    }
    let jails: Vec<(String, u32, u32, u32, u32)> = typed("Jails", take("Jails")?)?;
    Ok(Status {
        online: typed("Online", take("Online")?)?,
        reason: typed("OfflineReason", take("OfflineReason")?)?,
        version: clean(&typed::<String>("Version", take("Version")?)?),
        jails: jails
            .into_iter()
            .map(|(name, cf, tf, cb, tb)| JailStats {
                name: clean(&name),
                currently_failed: cf,
                total_failed: tf,
                currently_banned: cb,
                total_banned: tb,
            })
            .collect(),
        last_probe: typed("LastProbeTimestamp", take("LastProbeTimestamp")?)?,
        activation: typed("LastActivation", take("LastActivation")?)?,
        record: typed("PendingRecovery", take("PendingRecovery")?)?,
        // Daemons older than trials do not have it.
        trial: match all.get("Trial") {
            Some(v) => typed("Trial", v.try_clone()?)?,
            None => Dict::new(),
        },
        interval: typed("ProbeIntervalUSec", take("ProbeIntervalUSec")?)?,
        window: typed("CrashWindowUSec", take("CrashWindowUSec")?)?,
        socket: clean(&typed::<String>("SocketPath", take("SocketPath")?)?),
    })
}

fn status_json(s: &Status) -> Value {
    let activation = if s.activation.is_empty() {
        Value::Null
    } else {
        json!({
            "jail": text(&s.activation, "JailName"),
            "activated_at_usec": field::<u64>(&s.activation, "ActivatedAt").unwrap_or(0),
        })
    };
    json!({
        "online": s.online,
        "offline_reason": (s.reason != 0).then(|| reason_name(s.reason)),
        "offline_reason_code": s.reason,
        "version": s.version,
        "jails": s.jails,
        "last_probe_usec": s.last_probe,
        "last_activation": activation,
        "pending_recovery": record_json(&s.record),
        "trial": if s.trial.is_empty() {
            Value::Null
        } else {
            json!({
                "jail": text(&s.trial, "JailName"),
                "started_at_usec": field::<u64>(&s.trial, "StartedAt").unwrap_or(0),
                "deadline_at_usec": field::<u64>(&s.trial, "DeadlineAt").unwrap_or(0),
            })
        },
        "probe_interval_usec": s.interval,
        "crash_window_usec": s.window,
        "socket": s.socket,
    })
}

fn duration(usec: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(usec / 1_000_000)).to_string()
}

/// The readable form of a record, one line and its details.
fn record_text(r: &Dict) -> String {
    let j = record_json(r);
    let jail = j["jail"].as_str().unwrap_or("");
    let what = match j["cause"].as_u64() {
        Some(1) => format!(
            "fail2ban went offline ({})",
            j["offline_reason"].as_str().unwrap_or("unknown")
        ),
        Some(2) => "the jail is not running".to_owned(),
        Some(3) => format!(
            "jails stopped running: {}",
            strings(r, "VanishedJails").join(", ")
        ),
        _ => "unknown cause".to_owned(),
    };
    let state = if j["recovered"].as_bool() == Some(true) {
        format!(
            "recovered {}",
            time(j["recovered_at_usec"].as_u64().unwrap_or(0)).unwrap_or_default()
        )
    } else {
        "NOT recovered".to_owned()
    };
    let mut out = format!(
        "{jail}: {what}, detected {}; {state}",
        time(j["detected_at_usec"].as_u64().unwrap_or(0)).unwrap_or_default()
    );
    if j["rolled_back"].as_bool() == Some(true) {
        out.push_str("; rolled back");
    }
    if let (Some(result), Some(code)) = (j["unit_result"].as_str(), j["exit_status"].as_i64()) {
        let _ = write!(out, "; unit result {result}, status {code}");
    }
    let suspects = strings(r, "SuspectJails");
    if suspects.len() > 1 {
        let _ = write!(out, "; suspects {}", suspects.join(", "));
    }
    out
}

fn status_text(s: &Status) -> String {
    let mut out = String::new();
    let row = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "{:<18}{value}", format!("{label}:"));
    };
    let fail2ban = if s.online {
        format!(
            "online, version {}, {} jail{}",
            s.version,
            s.jails.len(),
            if s.jails.len() == 1 { "" } else { "s" }
        )
    } else {
        format!("OFFLINE ({})", reason_name(s.reason))
    };
    row(&mut out, "fail2ban", &fail2ban);
    row(
        &mut out,
        "last probe",
        &time(s.last_probe).unwrap_or_else(|| "never".into()),
    );
    let activation = if s.activation.is_empty() {
        "none".to_owned()
    } else {
        format!(
            "{} at {}",
            text(&s.activation, "JailName"),
            time(field::<u64>(&s.activation, "ActivatedAt").unwrap_or(0)).unwrap_or_default()
        )
    };
    row(&mut out, "last activation", &activation);
    let record = if s.record.is_empty() {
        "none".to_owned()
    } else {
        record_text(&s.record)
    };
    row(&mut out, "pending recovery", &record);
    if !s.trial.is_empty() {
        let deadline = field::<u64>(&s.trial, "DeadlineAt").unwrap_or(0);
        let now = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
        row(
            &mut out,
            "trial",
            &format!(
                "{} until {} ({} s left; fail2ban-healthd confirm | abort)",
                text(&s.trial, "JailName"),
                time(deadline).unwrap_or_default(),
                deadline.saturating_sub(now) / 1_000_000
            ),
        );
    }
    row(
        &mut out,
        "watching",
        &format!(
            "{} every {}, crash window {}",
            s.socket,
            duration(s.interval),
            duration(s.window)
        ),
    );
    if !s.jails.is_empty() {
        out.push('\n');
        out.push_str(&table::jail_rows(&s.jails));
    }
    out
}

/// `status`: 0 when fail2ban is online and no recovery is pending, 1
/// otherwise.
///
/// # Errors
/// The daemon could not be asked.
pub async fn status(bus: &BusArgs, as_json: bool) -> Result<u8, Failure> {
    let (conn, _p) = connect(bus).await?;
    let s = read_status(&conn).await.map_err(|e| call_failed(bus, e))?;
    if as_json {
        println!("{}", status_json(&s));
    } else {
        print!("{}", status_text(&s));
    }
    let pending = !s.record.is_empty() && field::<bool>(&s.record, "Recovered") == Some(false);
    Ok(if s.online && !pending { 0 } else { 1 })
}
