//! Parsers of the raw value kinds that several groups share: durations,
//! absolute file paths, commands and required values.

use std::path::PathBuf;
use std::time::Duration;

use super::{Error, bad};

/// The value of a setting that has a default. After the defaults are
/// merged in it is always there; `None` is an error naming the key.
pub(super) fn given<T: Clone>(key: &'static str, value: &Option<T>) -> Result<T, Error> {
    value.clone().ok_or_else(|| bad(key, "has no value"))
}

/// An absolute path to a file, or the key's error.
pub(super) fn file_path(key: &'static str, raw: &str) -> Result<PathBuf, Error> {
    if raw.starts_with('/') && !raw.ends_with('/') && !raw.contains('\0') {
        Ok(PathBuf::from(raw))
    } else {
        Err(bad(
            key,
            format!("{raw:?} is not an absolute path to a file"),
        ))
    }
}

/// A command line split on whitespace (no shell), or the key's error.
pub(super) fn command(key: &'static str, raw: &Option<String>) -> Result<Vec<String>, Error> {
    let raw = given(key, raw)?;
    let words: Vec<String> = raw.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() || raw.contains('\0') {
        return Err(bad(
            key,
            format!("{raw:?} is not a command (a program and its arguments)"),
        ));
    }
    Ok(words)
}

/// A duration from `min` to `max`, or the key's error.
pub(super) fn duration(
    key: &'static str,
    raw: &Option<String>,
    min: Duration,
    max: Duration,
) -> Result<Duration, Error> {
    let raw = given(key, raw)?;
    let d = humantime::parse_duration(raw.trim()).map_err(|e| {
        bad(
            key,
            format!("{raw:?} is not a duration like \"30s\" or \"1m\" ({e})"),
        )
    })?;
    if d < min || d > max {
        return Err(bad(
            key,
            format!(
                "{raw:?} is out of range ({} to {})",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

/// One of `choices`, or the key's error listing them.
pub(super) fn one_of<T: Copy>(
    key: &'static str,
    raw: &Option<String>,
    choices: &[(&str, T)],
) -> Result<T, Error> {
    let raw = given(key, raw)?;
    choices
        .iter()
        .find(|(name, _)| *name == raw)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            bad(key, format!("{raw:?} is not one of {}", names.join(", ")))
        })
}
