//! Who besides root may act: `manage_group`, `rollback_group`.

use super::{Error, bad};

/// A group whose members hold a right (`manage_group`, `rollback_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageGroup {
    /// Its name, as configured.
    pub name: String,
    /// Its id, looked up at start.
    pub gid: u32,
}

/// The group named by `key`, if any; `lookup` resolves a name to its id.
pub(super) fn group(
    key: &'static str,
    value: Option<&str>,
    lookup: &impl Fn(&str) -> Option<u32>,
) -> Result<Option<ManageGroup>, Error> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) => {
            let gid = lookup(name).ok_or_else(|| bad(key, format!("no group named {name:?}")))?;
            Ok(Some(ManageGroup {
                name: name.to_owned(),
                gid,
            }))
        }
    }
}

/// Looks a group up in the system's group database.
pub fn system_group(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}
