//! Reaching the daemon: which bus ([`BusArgs`]), the connection and the
//! proxy, managing calls with interactive authorization on a terminal,
//! and errors as one line with an exit status ([`Failure`]).

use std::process::ExitCode;

use clap::Args;

use super::values::clean;
use crate::bus::proxy::Health1Proxy;

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
