//! `activate`, `dismiss` and `rollback`: the managing calls, with their
//! answers printed.

use serde_json::json;

use super::connect::{BusArgs, Failure, call_failed, call_managing, connect};
use super::values::{field, text, time};

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
