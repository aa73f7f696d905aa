//! A small tray-applet-style subscriber: prints fail2ban's state, then one
//! line per change, using the library's public proxy.
//!
//! ```text
//! cargo run --example subscriber                        # the system bus
//! cargo run --example subscriber -- unix:path=/tmp/bus  # another bus
//! ```

use fail2ban_healthd::bus::proxy::Health1Proxy;
use futures_util::StreamExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> zbus::Result<()> {
    let conn = match std::env::args().nth(1) {
        Some(address) => {
            zbus::connection::Builder::address(address.as_str())
                .build()
                .await?
        }
        None => zbus::Connection::system().await?,
    };
    let health = Health1Proxy::new(&conn).await?;

    // Subscribe first, then read, so no change falls in between.
    let mut online = health.receive_online_changed().await;
    let mut crashes = health.receive_activation_crash_detected().await?;
    let mut resolved = health.receive_recovery_resolved().await?;
    println!(
        "fail2ban is {} with {} jails",
        if health.online().await? {
            "online"
        } else {
            "offline"
        },
        health.active_jails().await?
    );

    loop {
        tokio::select! {
            Some(change) = online.next() => {
                let up = change.get().await?;
                println!("fail2ban is now {}", if up { "online" } else { "offline" });
            }
            Some(signal) = crashes.next() => {
                let args = signal.args()?;
                println!(
                    "crash attributed to jail {} (cause {}); a rollback is possible",
                    args.jail_name(),
                    args.cause()
                );
            }
            Some(signal) = resolved.next() => {
                println!("recovered: {}", signal.args()?.jail_name());
            }
            else => return Ok(()),
        }
    }
}
