//! Probe benchmark: this client against the same probe done by an
//! in-process Python socket client and by shelling out to fail2ban-client,
//! all against one real private fail2ban-server, in one run.
//!
//! Run: `cargo bench --bench probe`. Environment: `PROBE_BENCH_COUNT`
//! (probes per round, default 1000), `PROBE_BENCH_ROUNDS` (default 3; the
//! clients take turns and each row shows its median round), and
//! `PROBE_BENCH_SHELL_COUNT` (default 20, since each shell-out probe
//! starts several Python processes).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fail2ban_healthd::fail2ban::{ProbeConfig, Prober};
use nix::sys::resource::{UsageWho, getrusage};

/// Wall and CPU time of a measured run.
#[derive(Debug, Clone)]
struct Measure {
    label: &'static str,
    count: u32,
    wall: Duration,
    cpu: Duration,
    /// The part of `cpu` spent in user space.
    user: Duration,
}

impl Measure {
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / f64::from(self.count)
    }
    fn user_us(&self) -> f64 {
        self.user.as_secs_f64() * 1e6 / f64::from(self.count)
    }
    fn wall_us(&self) -> f64 {
        self.wall.as_secs_f64() * 1e6 / f64::from(self.count)
    }
}

/// CPU time so far (user plus system) and its user part.
fn cpu(who: UsageWho) -> (Duration, Duration) {
    let usage = getrusage(who).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    let user = tv(usage.user_time());
    (user + tv(usage.system_time()), user)
}

fn env_count(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut runs: Vec<Measure>) -> Measure {
    runs.sort_by_key(|m| m.cpu);
    runs[runs.len() / 2].clone()
}

/// How this client's probes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One [`Prober`] holding its connection, as the daemon does.
    Held,
    /// One [`Prober`], a new connection per probe.
    PerConnection,
    /// A new [`Prober`] per probe, as the `probe` subcommand does.
    OneShot,
}

/// `count` probes in this process.
fn rust(
    runtime: &tokio::runtime::Runtime,
    config: &ProbeConfig,
    count: u32,
    mode: Mode,
) -> Measure {
    let make = || match mode {
        Mode::Held => Prober::holding(config.clone()),
        Mode::PerConnection | Mode::OneShot => Prober::new(config.clone()),
    };
    runtime.block_on(async {
        let mut prober = make();
        for _ in 0..20 {
            prober.probe().await.expect("probe");
        }
        let (cpu0, t0) = (cpu(UsageWho::RUSAGE_SELF), Instant::now());
        for _ in 0..count {
            if mode == Mode::OneShot {
                prober = make();
            }
            prober.probe().await.expect("probe");
        }
        let (total, user) = cpu(UsageWho::RUSAGE_SELF);
        Measure {
            label: match mode {
                Mode::Held => "ours, held connection (daemon)",
                Mode::PerConnection => "ours, connection per probe",
                Mode::OneShot => "ours, one-shot probes (CLI)",
            },
            count,
            wall: t0.elapsed(),
            cpu: total - cpu0.0,
            user: user - cpu0.1,
        }
    })
}

/// The Python baseline reports its own loop's CPU and wall time.
fn python(socket: &Path, count: u32, keep: bool) -> Measure {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/py_probe.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--socket")
        .arg(socket)
        .args(["--count", &count.to_string()]);
    if keep {
        cmd.arg("--keep");
    }
    let out = cmd.output().expect("run python3");
    assert!(out.status.success(), "python baseline failed: {out:?}");
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python JSON");
    Measure {
        label: if keep {
            "python3 client, held connection"
        } else {
            "python3 client, connection per probe"
        },
        count,
        wall: Duration::from_secs_f64(py["wall_s"].as_f64().expect("wall_s")),
        cpu: Duration::from_secs_f64(py["cpu_s"].as_f64().expect("cpu_s")),
        user: Duration::from_secs_f64(py["user_s"].as_f64().expect("user_s")),
    }
}

/// ping, version, status and status per jail, each a fail2ban-client run.
fn shell_out(server: &common::Fail2ban, count: u32) -> Measure {
    let client = common::require_program("fail2ban-client", "fail2ban");
    let mut calls: Vec<Vec<&str>> = vec![vec!["ping"], vec!["version"], vec!["status"]];
    calls.extend(server.jails.iter().map(|j| vec!["status", j.as_str()]));
    let (cpu0, t0) = (cpu(UsageWho::RUSAGE_CHILDREN), Instant::now());
    for _ in 0..count {
        for args in &calls {
            let out = Command::new(&client)
                .arg("-s")
                .arg(&server.socket)
                .args(args)
                .output();
            assert!(
                out.expect("fail2ban-client").status.success(),
                "fail2ban-client {args:?}"
            );
        }
    }
    let (total, user) = cpu(UsageWho::RUSAGE_CHILDREN);
    Measure {
        label: "fail2ban-client shell-out",
        count,
        wall: t0.elapsed(),
        cpu: total - cpu0.0,
        user: user - cpu0.1,
    }
}

/// How many probes each client makes, and in how many rounds.
struct Counts {
    probes: u32,
    rounds: u32,
    shell: u32,
}

/// The rows of the table, in the order printed: this client's three modes
/// and the Python client's two (each its median round), then the shell-out.
fn measure_all(
    runtime: &tokio::runtime::Runtime,
    config: &ProbeConfig,
    server: &common::Fail2ban,
    counts: &Counts,
) -> Vec<Measure> {
    // The machine is shared and noisy: the clients take turns, round after
    // round, and each row reports its median round.
    let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); 5];
    for _ in 0..counts.rounds {
        runs[0].push(rust(runtime, config, counts.probes, Mode::Held));
        runs[1].push(rust(runtime, config, counts.probes, Mode::PerConnection));
        runs[2].push(rust(runtime, config, counts.probes, Mode::OneShot));
        runs[3].push(python(&server.socket, counts.probes, true));
        runs[4].push(python(&server.socket, counts.probes, false));
    }
    let mut rows: Vec<Measure> = runs.into_iter().map(median).collect();
    rows.push(shell_out(server, counts.shell));
    rows
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn print_table(version: &str, jails: usize, rounds: u32, rows: &[Measure], held: &Measure) {
    let machine = cpu_model();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "probe benchmark: real fail2ban-server {version}, {jails} jails, {cores} cores of {machine}, median of {rounds} rounds"
    );
    println!(
        "{:<38} {:>6} {:>14} {:>13} {:>14} {:>14}",
        "client", "probes", "wall/probe µs", "CPU/probe µs", "user/probe µs", "CPU vs held"
    );
    for m in rows {
        println!(
            "{:<38} {:>6} {:>14.1} {:>13.1} {:>14.1} {:>13.1}x",
            m.label,
            m.count,
            m.wall_us(),
            m.cpu_us(),
            m.user_us(),
            m.cpu_us() / held.cpu_us()
        );
    }
}

/// The rows the targets and the summary lines compare.
struct Compared<'a> {
    held: &'a Measure,
    per_conn: &'a Measure,
    py_held: &'a Measure,
    py_per_conn: &'a Measure,
    shell: &'a Measure,
}

fn print_targets_and_summary(c: &Compared) {
    let Compared {
        held,
        per_conn,
        py_held,
        py_per_conn,
        shell,
    } = c;
    let like_held = py_held.cpu_us() / held.cpu_us();
    let like_conn = py_per_conn.cpu_us() / per_conn.cpu_us();
    let shell_ratio = shell.cpu_us() / held.cpu_us();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "Python CPU / ours, like for like (target >= 4): held connection {like_held:.1} ({}), \
         connection per probe {like_conn:.1} ({})",
        verdict(like_held >= 4.0),
        verdict(like_conn >= 4.0),
    );
    println!(
        "shell-out CPU / ours (target > 1000): {shell_ratio:.0} ({})",
        verdict(shell_ratio > 1000.0)
    );
    println!(
        "summary|probe: CPU and wall per probe, held connection|{:.0} µs CPU, {:.0} µs wall|Python client: {:.0} µs CPU, {:.0} µs wall|Python x{like_held:.1} CPU",
        held.cpu_us(),
        held.wall_us(),
        py_held.cpu_us(),
        py_held.wall_us()
    );
    println!(
        "summary|probe: connection per probe|{:.0} µs CPU, {:.0} µs wall|Python client: {:.0} µs CPU, {:.0} µs wall|Python x{like_conn:.1} CPU",
        per_conn.cpu_us(),
        per_conn.wall_us(),
        py_per_conn.cpu_us(),
        py_per_conn.wall_us()
    );
    println!(
        "summary|probe: vs shelling out|{:.0} µs CPU|fail2ban-client: {:.0} µs CPU|shell-out x{shell_ratio:.0} CPU",
        held.cpu_us(),
        shell.cpu_us()
    );
}

fn main() {
    let counts = Counts {
        probes: env_count("PROBE_BENCH_COUNT", 1000).max(1),
        rounds: env_count("PROBE_BENCH_ROUNDS", 3).max(1),
        shell: env_count("PROBE_BENCH_SHELL_COUNT", 20).max(1),
    };
    let server = common::Fail2ban::start();
    let config = ProbeConfig {
        socket: server.socket.clone(),
        ..ProbeConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let version = runtime
        .block_on(Prober::new(config.clone()).probe())
        .expect("server answers")
        .version;

    let rows = measure_all(&runtime, &config, &server, &counts);
    let [held, per_conn, _oneshot, py_held, py_per_conn, shell] = &rows[..] else {
        unreachable!("six rows")
    };
    print_table(&version, server.jails.len(), counts.rounds, &rows, held);
    print_targets_and_summary(&Compared {
        held,
        per_conn,
        py_held,
        py_per_conn,
        shell,
    });
}
