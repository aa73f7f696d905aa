//! Files the daemon writes: `state_file`, `metrics_file`.

use std::path::PathBuf;

use super::values::file_path;
use super::{Error, Settings, bad};

/// The state file: as configured, else `$STATE_DIRECTORY/state.json` or
/// the fixed default.
pub(super) fn state_file(raw: &Settings) -> Result<PathBuf, Error> {
    match raw.state_file.as_deref() {
        None => Ok(crate::state::default_path()),
        Some(p) => file_path("state_file", p),
    }
}

/// The metrics file, if any: node_exporter's textfile collector reads
/// only `*.prom`.
pub(super) fn metrics_file(raw: &Settings) -> Result<Option<PathBuf>, Error> {
    match raw.metrics_file.as_deref() {
        None | Some("") => Ok(None),
        Some(p) if !p.ends_with(".prom") => Err(bad(
            "metrics_file",
            format!(
                "{p:?} does not end in .prom, which node_exporter's textfile collector requires"
            ),
        )),
        Some(p) => file_path("metrics_file", p).map(Some),
    }
}
