//! What the bus sends, as the client prints it: variants as JSON, times,
//! record dictionaries and their fields, names of causes and reasons, all
//! text cleaned of control characters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use zbus::{OwnedVariant, Variant};

use crate::health::OfflineReason;

/// The longest text from the bus printed, in bytes.
const MAX_BUS_TEXT: usize = 1024;

/// Text from the bus as printed: no control characters (they are
/// escaped), at most [`MAX_BUS_TEXT`] bytes.
pub(crate) fn clean(s: &str) -> String {
    crate::text::clean(s, MAX_BUS_TEXT).into_owned()
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

/// A record or answer as the bus sends it (`a{sv}`).
pub(crate) type Dict = HashMap<String, OwnedVariant>;

/// A field of `d` as `T`; `None` when absent or of another type.
pub(crate) fn field<'a, T: TryFrom<&'a Variant<'a>>>(d: &'a Dict, key: &str) -> Option<T> {
    d.get(key).and_then(|v| T::try_from(v).ok())
}

/// A string-array field, each cleaned; empty when absent.
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

/// The name of an `OfflineReason` code.
pub(crate) fn reason_name(code: u32) -> &'static str {
    OfflineReason::from_code(code).map_or("unknown", OfflineReason::as_str)
}

/// The name of a record's `Cause` code.
pub(crate) fn cause_name(code: u32) -> &'static str {
    match code {
        1 => "went_offline",
        2 => "jail_not_running",
        3 => "jails_vanished",
        _ => "unknown",
    }
}

/// The record as the JSON `pending_recovery` object (`null` for `{}`).
pub(crate) fn record_json(r: &Dict) -> Value {
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
