//! The command-line client: `status`, `watch`, `activate`, `dismiss` and
//! `rollback`, all over D-Bus through [`Health1Proxy`].
//!
//! Owns what people and scripts see of a running daemon: short aligned
//! text, stable JSON (documented in the README), one-line errors and exit
//! statuses: 0 done, 1 refused by the daemon (or, for `status`, fail2ban
//! offline or a recovery pending), 2 the daemon could not be asked.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use zbus::{OwnedVariant, Variant};

pub mod table;
pub mod trial;

use crate::bus::proxy::Health1Proxy;
use crate::bus::{INTERFACE, NAME, PATH};
use crate::health::{JailStats, OfflineReason};

/// The longest text from the bus printed, in bytes.
const MAX_BUS_TEXT: usize = 1024;

/// Text from the bus as printed: no control characters (they are
/// escaped), at most [`MAX_BUS_TEXT`] bytes.
pub(crate) fn clean(s: &str) -> String {
    crate::text::clean(s, MAX_BUS_TEXT).into_owned()
}

/// Which bus the daemon is on.
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    /// The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session.
    #[arg(long, value_name = "BUS", default_value = "system", value_parser = ["system", "session"])]
    pub bus: String,
    /// An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus.
    #[arg(long, value_name = "ADDRESS")]
    pub bus_address: Option<String>,
}

impl BusArgs {
    pub(crate) fn describe(&self) -> String {
        match &self.bus_address {
            Some(a) => format!("the bus at {a}"),
            None => format!("the {} bus", self.bus),
        }
    }
}

/// A failure of the client, with its exit status.
#[derive(Debug)]
pub struct Failure {
    /// One line for standard error.
    pub message: String,
    /// 1 when the daemon refused, 2 when it could not be asked.
    pub status: u8,
}

pub(crate) fn unreachable(bus: &BusArgs, e: &zbus::Error) -> Failure {
    Failure {
        message: clean(&format!(
            "cannot reach fail2ban-healthd on {}: {e} (is it running? systemctl status fail2ban-healthd)",
            bus.describe()
        )),
        status: 2,
    }
}

/// A method's error as one line; the daemon's own errors are status 1.
/// (`NotAuthorized` says itself who may call, and how to become one.)
pub(crate) fn call_failed(bus: &BusArgs, e: zbus::Error) -> Failure {
    let zbus::Error::MethodError(name, message, _) = &e else {
        return unreachable(bus, &e);
    };
    let full = name.as_str();
    let Some(short) = full.strip_prefix(concat!("org.fail2ban_healthd.Health1", ".Error.")) else {
        return unreachable(bus, &e);
    };
    let message = clean(message.as_deref().unwrap_or_default());
    Failure {
        message: format!("{short}: {message}"),
        status: 1,
    }
}

/// Calls a managing method. On a terminal the call carries D-Bus's
/// `ALLOW_INTERACTIVE_AUTHORIZATION` flag, so that polkit may ask for a
/// password through the session's authentication agent; from a script it
/// does not, and polkit answers at once.
pub(crate) async fn call_managing<B, R>(
    p: &Health1Proxy<'_>,
    method: &str,
    body: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    use std::io::IsTerminal as _;
    let flags = if std::io::stdin().is_terminal() {
        zbus::proxy::MethodFlags::ALLOW_INTERACTIVE_AUTH
    } else {
        zbus::proxy::MethodFlags::empty()
    };
    p.inner()
        .call_with_flags(method, flags, body)
        .await?
        .ok_or_else(|| zbus::Error::Failure(format!("{method} sent no reply")))
}

pub(crate) async fn connect(
    bus: &BusArgs,
) -> Result<(zbus::Connection, Health1Proxy<'static>), Failure> {
    let builder = match (&bus.bus_address, bus.bus.as_str()) {
        (Some(a), _) => zbus::connection::Builder::address(a.as_str()),
        (None, "session") => zbus::connection::Builder::session(),
        (None, _) => zbus::connection::Builder::system(),
    };
    let conn = builder.build().await.map_err(|e| unreachable(bus, &e))?;
    let proxy = Health1Proxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| unreachable(bus, &e))?;
    Ok((conn, proxy))
}

/// Runs a client command and turns its result into an exit status.
pub fn exit_code(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(status),
        Err(f) => {
            eprintln!("fail2ban-healthd: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

/// A `t` time as RFC 3339 (UTC, seconds), or `None` for 0.
pub(crate) fn time(usec: u64) -> Option<String> {
    if usec == 0 {
        return None;
    }
    let t = DateTime::<Utc>::from_timestamp_micros(i64::try_from(usec).ok()?)?;
    Some(t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// A variant as JSON: numbers, strings, booleans, arrays, objects for
/// dictionaries, arrays for structures.
pub fn to_json(v: &Variant<'_>) -> Value {
    match v {
        Variant::U8(x) => json!(x),
        Variant::Bool(x) => json!(x),
        Variant::I16(x) => json!(x),
        Variant::U16(x) => json!(x),
        Variant::I32(x) => json!(x),
        Variant::U32(x) => json!(x),
        Variant::I64(x) => json!(x),
        Variant::U64(x) => json!(x),
        Variant::F64(x) => json!(x),
        Variant::Str(s) => json!(clean(s.as_str())),
        Variant::Signature(s) => json!(s.to_string()),
        Variant::ObjectPath(p) => json!(p.as_str()),
        Variant::Variant(inner) => to_json(inner),
        Variant::Array(a) => Value::Array(a.inner().iter().map(to_json).collect()),
        Variant::Dict(d) => {
            let mut map = serde_json::Map::new();
            for (k, v) in d.iter() {
                let key = match k {
                    Variant::Str(s) => clean(s.as_str()),
                    other => to_json(other).to_string(),
                };
                map.insert(key, to_json(v));
            }
            Value::Object(map)
        }
        Variant::Structure(s) => Value::Array(s.fields().iter().map(to_json).collect()),
        #[cfg(unix)]
        Variant::Fd(_) => Value::Null,
    }
}

type Dict = HashMap<String, OwnedVariant>;

pub(crate) fn field<'a, T: TryFrom<&'a Variant<'a>>>(d: &'a Dict, key: &str) -> Option<T> {
    d.get(key).and_then(|v| T::try_from(v).ok())
}

pub(crate) fn strings(d: &Dict, key: &str) -> Vec<String> {
    d.get(key)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| Vec::<String>::try_from(v).ok())
        .unwrap_or_default()
        .iter()
        .map(|s| clean(s))
        .collect()
}

/// A string field as printed (see [`clean`]); `""` when absent.
pub(crate) fn text(d: &Dict, key: &str) -> String {
    clean(field::<&str>(d, key).unwrap_or(""))
}

fn reason_name(code: u32) -> &'static str {
    OfflineReason::from_code(code).map_or("unknown", OfflineReason::as_str)
}

pub(crate) fn cause_name(code: u32) -> &'static str {
    match code {
        1 => "went_offline",
        2 => "jail_not_running",
        3 => "jails_vanished",
        _ => "unknown",
    }
}

/// The record as the JSON `pending_recovery` object (`null` for `{}`).
fn record_json(r: &Dict) -> Value {
    if r.is_empty() {
        return Value::Null;
    }
    let cause = field::<u32>(r, "Cause").unwrap_or(0);
    let reason = field::<u32>(r, "OfflineReason").unwrap_or(0);
    json!({
        "jail": text(r, "JailName"),
        "activated_at_usec": field::<u64>(r, "ActivatedAt").unwrap_or(0),
        "detected_at_usec": field::<u64>(r, "DetectedAt").unwrap_or(0),
        "recovered": field::<bool>(r, "Recovered").unwrap_or(false),
        "recovered_at_usec": field::<u64>(r, "RecoveredAt").unwrap_or(0),
        "cause": cause,
        "cause_name": cause_name(cause),
        "offline_reason_code": reason,
        "offline_reason": (reason != 0).then(|| reason_name(reason)),
        "suspect_jails": strings(r, "SuspectJails"),
        "vanished_jails": strings(r, "VanishedJails"),
        "unit_result": field::<&str>(r, "UnitResult").map(clean),
        "exit_status": field::<i32>(r, "ExitStatus"),
        "rolled_back": field::<bool>(r, "RolledBack").unwrap_or(false),
        "auto_rolled_back": field::<bool>(r, "AutoRolledBack").unwrap_or(false),
    })
}

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

/// `activate JAIL`.
///
/// # Errors
/// The daemon refused or could not be asked.
pub async fn activate(bus: &BusArgs, jail: &str) -> Result<u8, Failure> {
    let (_conn, p) = connect(bus).await?;
    let at: u64 = call_managing(&p, "RegisterActivation", &(jail,))
        .await
        .map_err(|e| call_failed(bus, e))?;
    println!(
        "registered the activation of {jail} at {}",
        time(at).unwrap_or_default()
    );
    Ok(0)
}

/// `dismiss`.
///
/// # Errors
/// The daemon refused or could not be asked.
pub async fn dismiss(bus: &BusArgs) -> Result<u8, Failure> {
    let (_conn, p) = connect(bus).await?;
    call_managing::<_, ()>(&p, "DismissRecovery", &())
        .await
        .map_err(|e| call_failed(bus, e))?;
    println!("dismissed the recovery record");
    Ok(0)
}

/// `rollback`: 0 when fail2ban answered afterwards, 1 when it did not.
///
/// # Errors
/// The daemon refused or could not be asked.
pub async fn rollback(bus: &BusArgs, as_json: bool) -> Result<u8, Failure> {
    let (_conn, p) = connect(bus).await?;
    let result: std::collections::HashMap<String, zbus::OwnedVariant> =
        call_managing(&p, "Rollback", &())
            .await
            .map_err(|e| call_failed(bus, e))?;
    let jail = text(&result, "JailName");
    let online = field::<bool>(&result, "Online").unwrap_or(false);
    let jails = field::<u32>(&result, "ActiveJails").unwrap_or(0);
    let dropin = text(&result, "DropInPath");
    if as_json {
        println!(
            "{}",
            json!({
                "jail": jail,
                "dropin_path": dropin,
                "restarted": field::<bool>(&result, "Restarted").unwrap_or(false),
                "online": online,
                "active_jails": jails,
            })
        );
    } else {
        println!("rolled back {jail}: disabled in {dropin}");
        if online {
            println!("fail2ban restarted and online with {jails} jails");
        } else {
            println!(
                "fail2ban restarted but NOT answering: the rollback can be tried again \
                 (fail2ban-healthd status; journalctl -u fail2ban)"
            );
        }
    }
    Ok(if online { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_become_json() {
        let v = Variant::from(vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(to_json(&v), json!(["a", "b"]));
        assert_eq!(to_json(&Variant::from(7u64)), json!(7));
        let mut d: HashMap<String, OwnedVariant> = HashMap::new();
        d.insert("Recovered".into(), OwnedVariant::from(true));
        let v = Variant::from(d);
        assert_eq!(to_json(&v), json!({ "Recovered": true }));
    }

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

    #[test]
    fn strings_from_the_bus_lose_their_control_characters() {
        let v = Variant::from("1.0.2\0\nMAINPID=1\u{85}");
        let out = to_json(&v);
        let text = out.as_str().unwrap();
        assert!(crate::text::printable(text), "{text:?}");
        assert_eq!(text, "1.0.2\\u{0}\\u{a}MAINPID=1\\u{85}");
        let mut d: HashMap<String, OwnedVariant> = HashMap::new();
        d.insert(
            "JailName".into(),
            OwnedVariant::try_from(Variant::from("x\u{1b}[2J")).unwrap(),
        );
        assert_eq!(record_json(&d)["jail"], "x\\u{1b}[2J");
    }

    #[test]
    fn an_empty_record_is_null() {
        assert_eq!(record_json(&HashMap::new()), Value::Null);
    }
}
