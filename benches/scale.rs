//! Scale: a fake fail2ban with 1 000 jails, answering through `stats`
//! (1.1 and later) and through the per-jail fallback (`status`, then
//! `status J short` for each jail, as 1.0 needs). Probe time in process,
//! and the daemon's resident memory after probing it, each beside the same
//! figure for 2 jails in the same run.
//!
//! Run: `cargo bench --bench scale` (`SCALE_BENCH_JAILS`, default 1000;
//! `SCALE_BENCH_PROBES`, default 200).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::bus::{Daemon, PrivateBus, proxy};
use common::fake::{Action, FakeServer, ok_reply};
use common::rss_kib;
use fail2ban_healthd::fail2ban::{ProbeConfig, Prober};
use serde_pickle::{HashableValue, Value};

fn s(x: &str) -> Value {
    Value::String(x.to_owned())
}

fn pair(k: &str, v: Value) -> Value {
    Value::Tuple(vec![s(k), v])
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("jail-{i:04}")).collect()
}

/// A fake answering like fail2ban 1.1 (`stats`) or 1.0 (no `stats`).
fn fake(jails: usize, with_stats: bool) -> FakeServer {
    let all = names(jails);
    let mut stats = BTreeMap::new();
    for (i, name) in all.iter().enumerate() {
        let i = i as i64;
        stats.insert(
            HashableValue::String(name.clone()),
            Value::List(vec![
                s("polling"),
                Value::Tuple(vec![Value::I64(i % 7), Value::I64(i)]),
                Value::Tuple(vec![Value::I64(i % 3), Value::I64(i * 2)]),
            ]),
        );
    }
    let stats = ok_reply(Value::Dict(stats));
    let status = ok_reply(Value::List(vec![
        pair("Number of jail", Value::I64(jails as i64)),
        pair("Jail list", s(&all.join(", "))),
    ]));
    let jail_status = ok_reply(Value::List(vec![
        pair(
            "Filter",
            Value::List(vec![
                pair("Currently failed", Value::I64(1)),
                pair("Total failed", Value::I64(5)),
            ]),
        ),
        pair(
            "Actions",
            Value::List(vec![
                pair("Currently banned", Value::I64(0)),
                pair("Total banned", Value::I64(2)),
            ]),
        ),
    ]));
    let version = ok_reply(s(if with_stats { "1.1.1" } else { "1.0.2" }));
    let invalid = common::fixture("1.0.2", "invalid-command");
    FakeServer::start(move |req| {
        let words: Vec<&str> = req.iter().map(String::as_str).collect();
        Action::Send(match words.as_slice() {
            ["version"] => version.clone(),
            ["stats"] if with_stats => stats.clone(),
            ["status"] => status.clone(),
            ["status", _, "short"] => jail_status.clone(),
            ["ping"] => ok_reply(s("pong")),
            _ => invalid.clone(),
        })
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    label: String,
    probe: Duration,
    rss_kib: u64,
}

async fn measure(jails: usize, with_stats: bool, probes: usize) -> Row {
    let server = fake(jails, with_stats);
    let mut prober = Prober::holding(ProbeConfig {
        socket: server.socket.clone(),
        timeout: Duration::from_secs(30),
        ..Default::default()
    });
    let first = prober.probe().await.expect("probe");
    assert_eq!(first.jails.len(), jails);
    let mut times = Vec::with_capacity(probes);
    for _ in 0..probes {
        let t = Instant::now();
        let status = prober.probe().await.expect("probe");
        times.push(t.elapsed());
        assert_eq!(status.jails.len(), jails);
    }
    // The daemon itself, after probing the same fake a while.
    let bus = PrivateBus::start();
    let daemon = Daemon::start(&bus, &server.socket, &["--log-level", "info"], &[]).await;
    let (_c, p) = proxy(&bus).await;
    for _ in 0..50 {
        assert!(p.probe().await.expect("Probe"));
    }
    assert_eq!(p.active_jails().await.expect("ActiveJails") as usize, jails);
    let rss = rss_kib(daemon.pid());
    Row {
        label: format!(
            "{jails} jails, {}",
            if with_stats {
                "stats"
            } else {
                "per-jail fallback"
            }
        ),
        probe: median(times),
        rss_kib: rss,
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let jails = env("SCALE_BENCH_JAILS", 1000);
    let probes = env("SCALE_BENCH_PROBES", 200).max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows: Vec<Row> = [(2, true), (jails, true), (2, false), (jails, false)]
        .into_iter()
        .map(|(n, stats)| rt.block_on(measure(n, stats, probes)))
        .collect();
    println!(
        "scale benchmark: a fake fail2ban, median of {probes} probes over a held connection; daemon RSS after 50 Probe() calls"
    );
    println!("{:<32} {:>14} {:>14}", "fail2ban", "probe", "daemon RSS");
    for r in &rows {
        println!(
            "{:<32} {:>11.3} ms {:>10} KiB",
            r.label,
            r.probe.as_secs_f64() * 1e3,
            r.rss_kib
        );
    }
    for (small, big) in [(&rows[0], &rows[1]), (&rows[2], &rows[3])] {
        println!(
            "summary|scale: {}|probe {:.2} ms, RSS {:.1} MiB|{}: probe {:.3} ms, RSS {:.1} MiB|probe x{:.0}",
            big.label,
            big.probe.as_secs_f64() * 1e3,
            big.rss_kib as f64 / 1024.0,
            small.label,
            small.probe.as_secs_f64() * 1e3,
            small.rss_kib as f64 / 1024.0,
            big.probe.as_secs_f64() / small.probe.as_secs_f64()
        );
    }
}
