//! Detection latency: from SIGKILL of a real fail2ban-server to the
//! `ActivationCrashDetected` signal at a D-Bus client, for the daemon as it
//! ships (instant sources on) and for the same daemon polling at a 2 s
//! interval with them off (the design it replaces), in one run.
//!
//! Run: `cargo bench --bench detection` (`DETECTION_BENCH_KILLS`, default 30).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, proxy};
use futures_util::StreamExt;
use nix::sys::signal::Signal;

struct Figures {
    label: &'static str,
    latencies: Vec<Duration>,
}

impl Figures {
    fn at(&self, q: f64) -> Duration {
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }
}

async fn measure(label: &'static str, kills: usize, extra: &[&str]) -> Figures {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let mut args = vec![
        "--crash-window",
        "1h",
        "--jail-start-grace",
        "0s",
        "--fail2ban-unit",
        "",
    ];
    args.extend_from_slice(extra);
    let _daemon = Daemon::start(&bus, &server.socket, &args, &[]).await;
    let (_c, p) = proxy(&bus).await;
    let mut crash = p
        .receive_activation_crash_detected()
        .await
        .expect("subscribe");
    let mut latencies = Vec::with_capacity(kills);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..kills {
        if round > 0 {
            server.spawn();
        }
        assert!(
            p.probe().await.expect("probe"),
            "online before kill {round}"
        );
        p.register_activation("alpha").await.expect("activation");
        // The kill falls anywhere in a 2 s polling interval, as a real
        // crash would.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(50 + (seed >> 33) % 2000)).await;
        let start = Instant::now();
        server.signal_and_wait(Signal::SIGKILL);
        tokio::time::timeout(Duration::from_secs(10), crash.next())
            .await
            .expect("ActivationCrashDetected")
            .expect("signal stream");
        latencies.push(start.elapsed());
        p.dismiss_recovery().await.expect("dismiss");
    }
    latencies.sort();
    Figures { label, latencies }
}

fn main() {
    let kills = std::env::var("DETECTION_BENCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .max(2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let instant = runtime.block_on(measure("instant sources (as shipped)", kills, &[]));
    let polling = runtime.block_on(measure(
        "interval polling only, 2 s",
        kills,
        &[
            "--instant-detection",
            "false",
            "--probe-interval",
            "2s",
            "--watch-interval",
            "1h",
        ],
    ));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "detection benchmark: SIGKILL of a real fail2ban-server to ActivationCrashDetected at a D-Bus client, {kills} kills each, {cores} cores"
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10}",
        "daemon", "min", "median", "p99", "max"
    );
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    for f in [&instant, &polling] {
        println!(
            "{:<32} {:>10} {:>10} {:>10} {:>10}",
            f.label,
            ms(f.latencies[0]),
            ms(f.at(0.5)),
            ms(f.at(0.99)),
            ms(f.latencies[f.latencies.len() - 1])
        );
    }
    let ratio = polling.at(0.5).as_secs_f64() / instant.at(0.5).as_secs_f64();
    println!("median ratio (polling / instant): {ratio:.0}x");
    println!(
        "summary|detection: SIGKILL to ActivationCrashDetected|median {}, p99 {}|2 s polling: median {}, p99 {}|polling x{ratio:.0}",
        ms(instant.at(0.5)),
        ms(instant.at(0.99)),
        ms(polling.at(0.5)),
        ms(polling.at(0.99))
    );
    println!(
        "targets: median <= 20 ms: {} ; p99 <= 100 ms: {}",
        if instant.at(0.5) <= Duration::from_millis(20) {
            "met"
        } else {
            "MISSED"
        },
        if instant.at(0.99) <= Duration::from_millis(100) {
            "met"
        } else {
            "MISSED"
        }
    );
}
