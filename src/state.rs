//! The state file: the monitor's [`Memory`] as JSON, written atomically on
//! every change and read back at start, so a daemon restart or a reboot
//! loses neither the latest activation nor the recovery record.
//!
//! Owns the file format and the write protocol (temporary file, fsync,
//! rename, fsync of the directory). A file that cannot be read back is
//! moved aside; it never stops the daemon from starting.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::OfflineReason;
use crate::monitor::{Activation, Cause, Memory, RecoveryRecord, Trial, UnitExit};

/// The file's format version.
const FORMAT: u32 = 1;

/// Where the state lives: `$STATE_DIRECTORY/state.json` under systemd,
/// else `/var/lib/fail2ban-healthd/state.json`.
pub fn default_path() -> PathBuf {
    let dir = std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| {
            // systemd may list several directories, separated by colons.
            v.to_str()
                .and_then(|s| s.split(':').next().map(PathBuf::from))
        })
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/var/lib/fail2ban-healthd"));
    dir.join("state.json")
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// It exists but could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Its content is not a state file of this format.
    #[error("{} is not a valid state file: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u32,
    last_activation: Option<ActivationV1>,
    jails_before: Option<Vec<String>>,
    spent: bool,
    /// Missing in files of older releases: then derived from
    /// `jails_before`.
    #[serde(default)]
    ran_before: Option<bool>,
    recent: Vec<ActivationV1>,
    record: Option<RecordV1>,
    #[serde(default)]
    seen_jails: Vec<SeenV1>,
    /// The running trial; missing in files of older releases.
    #[serde(default)]
    trial: Option<TrialV1>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrialV1 {
    jail_name: String,
    /// Microseconds since the Unix epoch.
    started_at: i64,
    /// Microseconds since the Unix epoch.
    deadline_at: i64,
    /// The daemon's drop-in before the trial; `null`: there was none.
    dropin_before: Option<String>,
}

/// The longest drop-in a trial remembers.
const MAX_DROPIN: usize = 256 * 1024;

impl From<&Trial> for TrialV1 {
    fn from(t: &Trial) -> Self {
        Self {
            jail_name: t.jail_name.clone(),
            started_at: t.started_at.timestamp_micros(),
            deadline_at: t.deadline_at.timestamp_micros(),
            dropin_before: t.dropin_before.clone(),
        }
    }
}

impl TryFrom<TrialV1> for Trial {
    type Error = String;
    fn try_from(t: TrialV1) -> Result<Self, String> {
        check_jails("trial.jail_name", std::slice::from_ref(&t.jail_name))?;
        let started_at = time(t.started_at, "trial.started_at")?;
        let deadline_at = time(t.deadline_at, "trial.deadline_at")?;
        if deadline_at < started_at {
            return Err("trial.deadline_at is before trial.started_at".into());
        }
        if let Some(d) = &t.dropin_before {
            if d.len() > MAX_DROPIN {
                return Err(format!(
                    "trial.dropin_before is longer than {MAX_DROPIN} bytes"
                ));
            }
            if !d.starts_with(crate::rollback::MARKER) {
                return Err("trial.dropin_before is not a drop-in fail2ban-healthd wrote".into());
            }
            if d.contains('\0') {
                return Err("trial.dropin_before holds a NUL byte".into());
            }
        }
        Ok(Trial {
            jail_name: t.jail_name,
            started_at,
            deadline_at,
            dropin_before: t.dropin_before,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenV1 {
    jail_name: String,
    /// Microseconds since the Unix epoch; `null`: before the daemon first
    /// looked.
    first_seen: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationV1 {
    jail_name: String,
    /// Microseconds since the Unix epoch.
    activated_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordV1 {
    jail_name: String,
    activated_at: i64,
    detected_at: i64,
    /// `0` while unresolved.
    recovered_at: i64,
    cause: u32,
    offline_reason: u32,
    vanished_jails: Vec<String>,
    suspect_jails: Vec<String>,
    #[serde(default)]
    unit_result: Option<String>,
    #[serde(default)]
    exit_status: Option<i32>,
    #[serde(default)]
    rolled_back: bool,
    /// Missing in files of older releases.
    #[serde(default)]
    auto_rolled_back: bool,
    /// Missing in files of older releases: then derived from the file's
    /// `jails_before`.
    #[serde(default)]
    ran_before: Option<bool>,
}

fn time(usec: i64, what: &str) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_micros(usec).ok_or_else(|| format!("{what} is out of range"))
}

impl From<&Activation> for ActivationV1 {
    fn from(a: &Activation) -> Self {
        Self {
            jail_name: a.jail_name.clone(),
            activated_at: a.activated_at.timestamp_micros(),
        }
    }
}

impl TryFrom<ActivationV1> for Activation {
    type Error = String;
    fn try_from(a: ActivationV1) -> Result<Self, String> {
        Ok(Activation {
            activated_at: time(a.activated_at, "activated_at")?,
            jail_name: a.jail_name,
        })
    }
}

impl From<&RecoveryRecord> for RecordV1 {
    fn from(r: &RecoveryRecord) -> Self {
        Self {
            jail_name: r.jail_name.clone(),
            activated_at: r.activated_at.timestamp_micros(),
            detected_at: r.detected_at.timestamp_micros(),
            recovered_at: r.recovered_at.map_or(0, |t| t.timestamp_micros()),
            cause: r.cause.code(),
            offline_reason: r.cause.offline_reason().code(),
            vanished_jails: match &r.cause {
                Cause::JailsVanished(j) => j.clone(),
                _ => Vec::new(),
            },
            suspect_jails: r.suspect_jails.clone(),
            unit_result: r.unit_exit.as_ref().map(|u| u.result.clone()),
            exit_status: r.unit_exit.as_ref().map(|u| u.exit_status),
            rolled_back: r.rolled_back,
            auto_rolled_back: r.auto_rolled_back,
            ran_before: Some(r.ran_before),
        }
    }
}

impl TryFrom<RecordV1> for RecoveryRecord {
    type Error = String;
    fn try_from(r: RecordV1) -> Result<Self, String> {
        let cause = match r.cause {
            1 => Cause::WentOffline(
                OfflineReason::from_code(r.offline_reason)
                    .filter(|o| !matches!(o, OfflineReason::None | OfflineReason::NotProbedYet))
                    .ok_or("a cause-1 record needs an offline reason")?,
            ),
            2 => Cause::JailNotRunning,
            3 => Cause::JailsVanished(r.vanished_jails),
            other => return Err(format!("unknown cause {other}")),
        };
        Ok(RecoveryRecord {
            activated_at: time(r.activated_at, "activated_at")?,
            detected_at: time(r.detected_at, "detected_at")?,
            recovered_at: match r.recovered_at {
                0 => None,
                t => Some(time(t, "recovered_at")?),
            },
            jail_name: r.jail_name,
            cause,
            suspect_jails: r.suspect_jails,
            unit_exit: match (r.unit_result, r.exit_status) {
                (Some(result), Some(exit_status)) => Some(UnitExit {
                    result,
                    exit_status,
                }),
                _ => None,
            },
            rolled_back: r.rolled_back,
            auto_rolled_back: r.auto_rolled_back && r.rolled_back,
            ran_before: r.ran_before.unwrap_or(false),
        })
    }
}

/// The file's bytes for `memory`.
pub fn encode(memory: &Memory) -> Vec<u8> {
    let file = FileV1 {
        version: FORMAT,
        last_activation: memory.last_activation.as_ref().map(Into::into),
        jails_before: memory.jails_before.clone(),
        spent: memory.spent,
        ran_before: Some(memory.ran_before),
        recent: memory.recent.iter().map(Into::into).collect(),
        record: memory.record.as_ref().map(Into::into),
        seen_jails: memory
            .seen_jails
            .iter()
            .map(|(name, first)| SeenV1 {
                jail_name: name.clone(),
                first_seen: first.map(|t| t.timestamp_micros()),
            })
            .collect(),
        trial: memory.trial.as_ref().map(Into::into),
    };
    let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The largest state file read back. The daemon writes a few kilobytes at
/// most (a bounded list of recent activations, one record, the jails that
/// ran before an activation); anything much larger is not its own.
pub const MAX_FILE: u64 = 1 << 20;

/// At most this many jails in any list of the file (fail2ban with a
/// thousand jails is already far beyond real use).
const MAX_JAILS: usize = 4096;

/// At most this many recent activations (the monitor keeps 32).
const MAX_RECENT: usize = 64;

/// A jail list of the file: each name valid, the list bounded.
fn check_jails(what: &str, names: &[String]) -> Result<(), String> {
    if names.len() > MAX_JAILS {
        return Err(format!(
            "{what} lists {} jails, more than {MAX_JAILS}",
            names.len()
        ));
    }
    match names.iter().find(|n| !crate::health::valid_jail_name(n)) {
        Some(bad) => Err(format!(
            "{what} holds an invalid jail name {:?}",
            crate::text::clean(bad, 64)
        )),
        None => Ok(()),
    }
}

/// A unit result as systemd spells them (`exit-code`, `signal`, ...).
fn check_unit_result(result: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&result.len())
        && result.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unit_result {:?} is not a systemd result",
            crate::text::clean(result, 64)
        ))
    }
}

/// Every field of a record, beyond what its types say.
fn check_record(r: &RecordV1) -> Result<(), String> {
    check_jails("record.jail_name", std::slice::from_ref(&r.jail_name))?;
    check_jails("record.suspect_jails", &r.suspect_jails)?;
    check_jails("record.vanished_jails", &r.vanished_jails)?;
    match (r.cause, r.vanished_jails.is_empty(), r.offline_reason) {
        (1, true, _) => {}
        (2, true, 0) => {}
        (3, false, 0) => {}
        (1 | 2, false, _) => return Err("only a cause-3 record lists vanished jails".into()),
        (3, true, _) => return Err("a cause-3 record lists no vanished jails".into()),
        (2 | 3, _, _) => return Err("only a cause-1 record has an offline reason".into()),
        (other, _, _) => return Err(format!("unknown cause {other}")),
    }
    if let Some(result) = &r.unit_result {
        check_unit_result(result)?;
    }
    if r.unit_result.is_some() != r.exit_status.is_some() {
        return Err("unit_result and exit_status come together".into());
    }
    Ok(())
}

/// Reads `bytes` back, checking every field: jail names by the contract's
/// rule, lists bounded, times in range, causes and reasons known and
/// consistent.
///
/// # Errors
/// A message saying what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Memory, String> {
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("{} bytes, more than {MAX_FILE}", bytes.len()));
    }
    let file: FileV1 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    check(&file)?;
    let seen_jails = file
        .seen_jails
        .iter()
        .map(|j| {
            Ok((
                j.jail_name.clone(),
                j.first_seen.map(|t| time(t, "first_seen")).transpose()?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let (watch_ran_before, record_ran_before) = ran_before(&file);
    let last_activation = file.last_activation.map(Activation::try_from).transpose()?;
    let recent = file
        .recent
        .into_iter()
        .map(Activation::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let mut record = file.record.map(RecoveryRecord::try_from).transpose()?;
    if let (Some(r), Some(ran)) = (record.as_mut(), record_ran_before) {
        r.ran_before = ran;
    }
    Ok(Memory {
        last_activation,
        jails_before: file.jails_before,
        spent: file.spent,
        ran_before: watch_ran_before,
        recent,
        record,
        seen_jails,
        trial: file.trial.map(Trial::try_from).transpose()?,
    })
}

/// The file's version, its list lengths and every jail name in it.
fn check(file: &FileV1) -> Result<(), String> {
    if file.version != FORMAT {
        return Err(format!("unknown format version {}", file.version));
    }
    if file.recent.len() > MAX_RECENT {
        return Err(format!(
            "recent lists {} activations, more than {MAX_RECENT}",
            file.recent.len()
        ));
    }
    for a in file.last_activation.iter().chain(&file.recent) {
        check_jails("an activation", std::slice::from_ref(&a.jail_name))?;
    }
    if let Some(jails) = &file.jails_before {
        check_jails("jails_before", jails)?;
    }
    if let Some(r) = &file.record {
        check_record(r)?;
    }
    let seen_names: Vec<String> = file
        .seen_jails
        .iter()
        .map(|j| j.jail_name.clone())
        .collect();
    check_jails("seen_jails", &seen_names)
}

/// Whether the latest activation's jail, and the record's, ran before
/// their activation. Files of older releases did not say: the jails
/// running at the activation tell.
fn ran_before(file: &FileV1) -> (bool, Option<bool>) {
    let ran_before_activation = |jail: &str| {
        file.jails_before
            .as_ref()
            .is_some_and(|j| j.iter().any(|n| n == jail))
    };
    let watch = file.ran_before.unwrap_or_else(|| {
        file.last_activation
            .as_ref()
            .is_some_and(|a| ran_before_activation(&a.jail_name))
    });
    let record = file.record.as_ref().map(|r| {
        r.ran_before.unwrap_or_else(|| {
            file.last_activation.as_ref().is_some_and(|a| {
                a.jail_name == r.jail_name
                    && a.activated_at == r.activated_at
                    && ran_before_activation(&a.jail_name)
            })
        })
    });
    (watch, record)
}

/// Loads the state at `path`; `Ok(None)` when there is none yet. Only a
/// regular file of at most [`MAX_FILE`] bytes is read.
///
/// # Errors
/// [`LoadError`] for an unreadable or invalid file.
pub fn load(path: &Path) -> Result<Option<Memory>, LoadError> {
    use std::io::Read as _;
    let invalid = |message: String| LoadError::Invalid {
        path: path.to_owned(),
        message,
    };
    let read = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read(source)),
    };
    // A FIFO or a device would block or never end.
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(read)?;
    decode(&bytes).map(Some).map_err(invalid)
}

/// Moves an unusable state file aside (`state.json.corrupt-<time>`) and
/// returns where it went.
///
/// # Errors
/// When it cannot be renamed.
pub fn quarantine(path: &Path, now: DateTime<Utc>) -> std::io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{}", now.format("%Y%m%dT%H%M%S%.6fZ")));
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Writes `memory` to `path` atomically: a temporary file beside it,
/// fsync, rename over the old one, fsync of the directory. Readers see the
/// old file or the new one, never a mix, even across a crash.
///
/// # Errors
/// Any failure of those steps; the old file is then untouched.
pub fn save(path: &Path, memory: &Memory) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    crate::atomic::write(path, &encode(memory), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Memory {
        let t = |s: i64| DateTime::from_timestamp(1_790_000_000 + s, 123_000).unwrap();
        let a = Activation {
            jail_name: "nginx".into(),
            activated_at: t(0),
        };
        Memory {
            last_activation: Some(a.clone()),
            jails_before: Some(vec!["sshd".into()]),
            spent: true,
            ran_before: true,
            seen_jails: vec![("nginx".into(), Some(t(-100))), ("sshd".into(), None)],
            recent: vec![a],
            record: Some(RecoveryRecord {
                jail_name: "nginx".into(),
                activated_at: t(0),
                detected_at: t(3),
                recovered_at: Some(t(9)),
                cause: Cause::JailsVanished(vec!["sshd".into()]),
                suspect_jails: vec!["nginx".into()],
                unit_exit: Some(UnitExit {
                    result: "signal".into(),
                    exit_status: 9,
                }),
                rolled_back: true,
                auto_rolled_back: true,
                ran_before: false,
            }),
            trial: Some(Trial {
                jail_name: "nginx".into(),
                started_at: t(0),
                deadline_at: t(60),
                dropin_before: Some(format!(
                    "{}: x\n\n[old]\nenabled = false\n",
                    crate::rollback::MARKER
                )),
            }),
        }
    }

    #[test]
    fn memory_round_trips() {
        let m = sample();
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        assert_eq!(
            decode(&encode(&Memory::default())).unwrap(),
            Memory::default()
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for bad in [
            &b"\x00\xffgarbage"[..],
            b"",
            b"{}",
            b"{\"version\":2,\"last_activation\":null,\"jails_before\":null,\"spent\":false,\"recent\":[],\"record\":null}",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let text = String::from_utf8(encode(&sample())).unwrap();
        assert!(decode(text.replace("\"nginx\"", "\"../x\"").as_bytes()).is_err());
        assert!(decode(text.replace("\"cause\": 3", "\"cause\": 9").as_bytes()).is_err());
        // Every field is checked, not only the jail names.
        for (from, to) in [
            (
                "\"suspect_jails\": [\n      \"nginx\"",
                "\"suspect_jails\": [\n      \"ng\\u0000x\"",
            ),
            (
                "\"vanished_jails\": [\n      \"sshd\"",
                "\"vanished_jails\": [\n      \"ss\\nhd\"",
            ),
            (
                "\"jails_before\": [\n    \"sshd\"",
                "\"jails_before\": [\n    \"-x\"",
            ),
            (
                "\"unit_result\": \"signal\"",
                "\"unit_result\": \"sig\\nMAINPID=1\"",
            ),
            (
                "\"vanished_jails\": [\n      \"sshd\"\n    ]",
                "\"vanished_jails\": []",
            ),
            ("\"offline_reason\": 0", "\"offline_reason\": 3"),
            ("\"exit_status\": 9", "\"exit_status\": null"),
        ] {
            assert!(text.contains(from), "the sample lacks {from:?}");
            let bad = text.replace(from, to);
            assert!(decode(bad.as_bytes()).is_err(), "{to:?} was accepted");
        }
        let many = format!("[{}]", vec!["\"a\""; MAX_JAILS + 1].join(","));
        let bad = text.replace(
            "\"jails_before\": [\n    \"sshd\"\n  ]",
            &format!("\"jails_before\": {many}"),
        );
        assert!(decode(bad.as_bytes()).unwrap_err().contains("more than"));
        let padded = format!("{text}{}", " ".repeat(MAX_FILE as usize));
        assert!(decode(padded.as_bytes()).unwrap_err().contains("more than"));
    }

    #[test]
    fn files_of_older_releases_still_load() {
        // Written before `ran_before` existed.
        let text = String::from_utf8(encode(&sample())).unwrap();
        let old = text
            .replace("  \"ran_before\": true,\n", "")
            .replace(",\n    \"ran_before\": false", "");
        assert!(!old.contains("ran_before"), "{old}");
        let m = decode(old.as_bytes()).unwrap();
        assert!(!m.ran_before && !m.record.unwrap().ran_before);
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("state.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Would block for ever if it were opened.
        assert!(matches!(load(&fifo), Err(LoadError::Invalid { .. })));
        let big = dir.path().join("big.json");
        fs::write(&big, vec![b' '; MAX_FILE as usize + 10]).unwrap();
        assert!(matches!(load(&big), Err(LoadError::Invalid { .. })));
    }

    #[test]
    fn save_replaces_atomically_and_load_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert!(load(&path).unwrap().is_none());
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
        save(&path, &Memory::default()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(Memory::default()));
        // Only the file itself: no temporary file is left.
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 1);
        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(load(&path), Err(LoadError::Invalid { .. })));
        let aside = quarantine(&path, Utc::now()).unwrap();
        assert!(!path.exists() && aside.exists());
        assert_eq!(fs::read(aside).unwrap(), b"garbage");
    }
}
