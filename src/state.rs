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
use crate::monitor::{Activation, Cause, Memory, RecoveryRecord, UnitExit};

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
    recent: Vec<ActivationV1>,
    record: Option<RecordV1>,
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
        recent: memory.recent.iter().map(Into::into).collect(),
        record: memory.record.as_ref().map(Into::into),
    };
    let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Reads `bytes` back.
///
/// # Errors
/// A message saying what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Memory, String> {
    let file: FileV1 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FORMAT {
        return Err(format!("unknown format version {}", file.version));
    }
    let valid = |name: &str| crate::bus::valid_jail_name(name);
    let last_activation = file.last_activation.map(Activation::try_from).transpose()?;
    let recent = file
        .recent
        .into_iter()
        .map(Activation::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let record = file.record.map(RecoveryRecord::try_from).transpose()?;
    let names_ok = last_activation.iter().all(|a| valid(&a.jail_name))
        && recent.iter().all(|a| valid(&a.jail_name))
        && record.iter().all(|r| valid(&r.jail_name));
    if !names_ok {
        return Err("a jail name is invalid".into());
    }
    Ok(Memory {
        last_activation,
        jails_before: file.jails_before,
        spent: file.spent,
        recent,
        record,
    })
}

/// Loads the state at `path`; `Ok(None)` when there is none yet.
///
/// # Errors
/// [`LoadError`] for an unreadable or invalid file.
pub fn load(path: &Path) -> Result<Option<Memory>, LoadError> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|message| LoadError::Invalid {
                path: path.to_owned(),
                message,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LoadError::Read {
            path: path.to_owned(),
            source,
        }),
    }
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
