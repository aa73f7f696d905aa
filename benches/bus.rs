//! Bus: `GetAll` calls per second and their latency with 16 concurrent
//! clients (each its own connection and thread) on a private dbus-daemon,
//! while a real fail2ban answers, and while it is frozen (SIGSTOP) so that
//! a probe hangs in the daemon until its deadline. Both in one run.
//!
//! Run: `cargo bench --bench bus` (`BUS_BENCH_SECONDS` per phase, default
//! 5; `BUS_BENCH_CLIENTS`, default 16).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus};
use nix::sys::signal::{Signal, kill};

struct Phase {
    label: &'static str,
    calls: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Phase {
    fn at(&self, q: f64) -> Duration {
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }
}

/// `clients` threads calling `GetAll` in a loop for `seconds`.
fn hammer(address: &str, clients: usize, seconds: f64, label: &'static str) -> Phase {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let address = address.to_owned();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let conn = zbus::connection::Builder::address(address.as_str())
                        .build()
                        .await
                        .expect("connect");
                    let props = zbus::fdo::PropertiesProxy::builder(&conn)
                        .destination(fail2ban_healthd::bus::NAME)
                        .path(fail2ban_healthd::bus::PATH)
                        .build()
                        .await
                        .expect("proxy");
                    let iface =
                        zbus::names::InterfaceName::try_from(fail2ban_healthd::bus::INTERFACE)
                            .expect("interface");
                    let mut lat = Vec::new();
                    while Instant::now() < until {
                        let t = Instant::now();
                        let all: HashMap<String, zbus::OwnedVariant> =
                            props.get_all(iface.clone()).await.expect("GetAll");
                        lat.push(t.elapsed());
                        assert!(all.contains_key("Online"));
                    }
                    lat
                })
            })
        })
        .collect();
    let start = Instant::now();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    Phase {
        label,
        calls: latencies.len(),
        seconds,
        latencies,
    }
}

fn main() {
    let seconds: f64 = std::env::var("BUS_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let clients: usize = std::env::var("BUS_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _daemon = rt.block_on(Daemon::start(
        &bus,
        &server.socket,
        // Probes keep coming, and a frozen server holds each one for 5 s.
        &[
            "--probe-interval",
            "1s",
            "--probe-timeout",
            "5s",
            "--log-level",
            "info",
        ],
        &[],
    ));
    let normal = hammer(&bus.address, clients, seconds, "fail2ban answering");
    kill(server.pid(), Signal::SIGSTOP).expect("SIGSTOP");
    // Let a probe start and hang.
    std::thread::sleep(Duration::from_millis(1200));
    let frozen = hammer(
        &bus.address,
        clients,
        seconds,
        "fail2ban frozen (probe hanging)",
    );
    kill(server.pid(), Signal::SIGCONT).expect("SIGCONT");

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bus benchmark: {clients} concurrent clients calling GetAll on a private dbus-daemon, {seconds} s per phase, {cores} cores"
    );
    println!(
        "{:<34} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "phase", "calls", "calls/s", "median", "p99", "max"
    );
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    for p in [&normal, &frozen] {
        println!(
            "{:<34} {:>9} {:>10.0} {:>10} {:>10} {:>10}",
            p.label,
            p.calls,
            p.calls as f64 / p.seconds,
            ms(p.at(0.5)),
            ms(p.at(0.99)),
            ms(p.latencies[p.latencies.len() - 1])
        );
    }
    let rate = |p: &Phase| p.calls as f64 / p.seconds;
    println!(
        "summary|bus: GetAll, {clients} clients, fail2ban frozen|{:.0}/s, p99 {}|fail2ban answering: {:.0}/s, p99 {}|rate x{:.2}",
        rate(&frozen),
        ms(frozen.at(0.99)),
        rate(&normal),
        ms(normal.at(0.99)),
        rate(&frozen) / rate(&normal)
    );
}
