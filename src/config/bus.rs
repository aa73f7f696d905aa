//! The bus served on: `bus`, `bus_address`.

use super::values::given;
use super::{Error, Settings, bad};

/// Which bus to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (honours `DBUS_SYSTEM_BUS_ADDRESS`).
    System,
    /// The session bus of the calling user.
    Session,
    /// A bus at this address.
    Address(String),
}

/// The bus: `bus_address` when given, else `bus`.
pub(super) fn bus(raw: &Settings) -> Result<Bus, Error> {
    // A bad `bus` is an error even where `bus_address` overrides it.
    let named = match given("bus", &raw.bus)?.as_str() {
        "system" => Bus::System,
        "session" => Bus::Session,
        other => {
            return Err(bad(
                "bus",
                format!("{other:?} is neither \"system\" nor \"session\""),
            ));
        }
    };
    match raw.bus_address.as_deref() {
        None => Ok(named),
        Some(addr) if addr.trim().is_empty() || !addr.contains(':') => Err(bad(
            "bus_address",
            format!("{addr:?} is not a D-Bus address like \"unix:path=/run/bus\""),
        )),
        Some(addr) => Ok(Bus::Address(addr.to_owned())),
    }
}
