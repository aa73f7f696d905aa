//! Footprint: resident memory of the daemon after start and after 10 000
//! `Probe()` calls over D-Bus against a real fail2ban-server (answered by
//! a probe at most a second old), beside a Python process doing the same job
//! (`benches/py_daemon.py`: the same socket client, a D-Bus service in
//! PyGObject), in one run.
//!
//! Run: `cargo bench --bench footprint` (`FOOTPRINT_BENCH_PROBES`, default
//! 10000). Needs python3-gi for the baseline (`bench/run.sh` installs it).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bus::{Daemon, PrivateBus, proxy};
use common::{Fail2ban, rss_kib};
use nix::unistd::Pid;

struct Row {
    label: &'static str,
    start_kib: u64,
    after_kib: u64,
    per_probe: Duration,
}

async fn call_probe(conn: &zbus::Connection, name: &str, path: &str, iface: &str) -> bool {
    let reply = conn
        .call_method(Some(name), path, Some(iface), "Probe", &())
        .await
        .expect("Probe");
    reply.body().deserialize::<bool>().expect("a boolean")
}

async fn measure_ours(server: &Fail2ban, probes: usize) -> Row {
    let bus = PrivateBus::start();
    let daemon = Daemon::start(&bus, &server.socket, &["--log-level", "info"], &[]).await;
    let (conn, p) = proxy(&bus).await;
    assert!(p.probe().await.expect("Probe"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_kib = rss_kib(daemon.pid());
    let t = Instant::now();
    for _ in 0..probes {
        assert!(
            call_probe(
                &conn,
                fail2ban_healthd::bus::NAME,
                fail2ban_healthd::bus::PATH,
                fail2ban_healthd::bus::INTERFACE
            )
            .await
        );
    }
    let per_probe = t.elapsed() / probes as u32;
    Row {
        label: "fail2ban-healthd (Rust)",
        start_kib,
        after_kib: rss_kib(daemon.pid()),
        per_probe,
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn measure_python(server: &Fail2ban, probes: usize) -> Row {
    let bus = PrivateBus::open();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/py_daemon.py");
    let child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg("--socket")
        .arg(&server.socket)
        .args(["--bus-address", &bus.address])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 (apt-get install -y python3-gi)");
    let child = Killed(child);
    let pid = Pid::from_raw(child.0.id() as i32);
    let conn = bus.connect().await;
    let (name, path, iface) = (
        "org.fail2ban_healthd.PyBaseline",
        "/org/fail2ban_healthd/PyBaseline",
        "org.fail2ban_healthd.PyBaseline",
    );
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("bus");
    let wait = Instant::now();
    while !dbus
        .name_has_owner(zbus::names::BusName::try_from(name).expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(
            wait.elapsed() < Duration::from_secs(20),
            "the Python baseline did not start (python3-gi installed?)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(call_probe(&conn, name, path, iface).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_kib = rss_kib(pid);
    let t = Instant::now();
    for _ in 0..probes {
        assert!(call_probe(&conn, name, path, iface).await);
    }
    let per_probe = t.elapsed() / probes as u32;
    Row {
        label: "Python + PyGObject baseline",
        start_kib,
        after_kib: rss_kib(pid),
        per_probe,
    }
}

fn main() {
    let probes: usize = std::env::var("FOOTPRINT_BENCH_PROBES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
        .max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = Fail2ban::start();
    let ours = rt.block_on(measure_ours(&server, probes));
    let python = rt.block_on(measure_python(&server, probes));
    println!(
        "footprint benchmark: resident memory after start and after {probes} Probe() calls against a real fail2ban-server with 2 jails (answered by a probe at most 1 s old; the baseline probes every time)"
    );
    println!(
        "{:<30} {:>14} {:>14} {:>10} {:>14}",
        "service", "RSS at start", "RSS after", "growth", "per Probe()"
    );
    for r in [&ours, &python] {
        println!(
            "{:<30} {:>10} KiB {:>10} KiB {:>6} KiB {:>11.1} µs",
            r.label,
            r.start_kib,
            r.after_kib,
            r.after_kib as i64 - r.start_kib as i64,
            r.per_probe.as_secs_f64() * 1e6
        );
    }
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "target: under 8 MiB after {probes} probes: {} ({:.1} MiB); growth {} KiB",
        if ours.after_kib < 8 * 1024 {
            "met"
        } else {
            "MISSED"
        },
        mib(ours.after_kib),
        ours.after_kib as i64 - ours.start_kib as i64
    );
    println!(
        "summary|footprint: RSS after {probes} probes|{:.1} MiB (start {:.1})|Python: {:.1} MiB (start {:.1})|Python x{:.1}",
        mib(ours.after_kib),
        mib(ours.start_kib),
        mib(python.after_kib),
        mib(python.start_kib),
        python.after_kib as f64 / ours.after_kib as f64
    );
}
