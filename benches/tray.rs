//! The tray applet's cost and speed, on the headless desktop of its tests
//! (Xvfb, xfce4-panel's Status Tray, python3-dbusmock's notification
//! server), a real fail2ban-server and the daemon on a private bus:
//!
//! - latency from a SIGKILL of fail2ban to the icon's pixel on the screen
//!   turning red (read from the X server, about a millisecond a poll) and
//!   to the first notification, beside the daemon's own `WentOffline`
//!   signal at a bus client (the baseline: what any subscriber could know);
//! - resident memory, beside the daemon's and the panel's tray plugin's;
//! - CPU time and wake-ups (context switches, all threads) over an idle
//!   spell, beside the daemon's over the same spell.
//!
//! Run: `cargo bench --features tray --bench tray` (`TRAY_BENCH_KILLS`,
//! default 10; `TRAY_BENCH_IDLE_SECS`, default 60).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, probe_until, proxy};
use common::desktop::{Applet, Desktop};
use fail2ban_healthd::bus::proxy::Health1Proxy;
use futures_util::{FutureExt as _, StreamExt as _};
use nix::sys::signal::Signal;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One pixel of the root window, RGB.
struct Screen {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
}

impl Screen {
    fn open(display: &str) -> Self {
        let (conn, n) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let root = conn.setup().roots[n].root;
        Screen { conn, root }
    }

    fn pixel(&self, x: i16, y: i16) -> [u8; 3] {
        let reply = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, self.root, x, y, 1, 1, !0)
            .expect("GetImage")
            .reply()
            .expect("GetImage reply");
        // 24-bit depth in 32-bit units, little-endian: B, G, R, pad.
        [reply.data[2], reply.data[1], reply.data[0]]
    }

    /// The centre of the red-dominant pixels in the panel's strip.
    fn find(&self, width: u16, pred: impl Fn([u8; 3]) -> bool) -> Option<(i16, i16)> {
        let reply = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, self.root, 0, 0, width, 40, !0)
            .ok()?
            .reply()
            .ok()?;
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for y in 0..40usize {
            for x in 0..usize::from(width) {
                let i = (y * usize::from(width) + x) * 4;
                let p = [reply.data[i + 2], reply.data[i + 1], reply.data[i]];
                if pred(p) {
                    xs.push(x as i16);
                    ys.push(y as i16);
                }
            }
        }
        if xs.len() < 16 {
            return None;
        }
        let mid = |v: &[i16]| (v.iter().min().unwrap() + v.iter().max().unwrap()) / 2;
        Some((mid(&xs), mid(&ys)))
    }
}

fn is_red([r, g, b]: [u8; 3]) -> bool {
    u16::from(r) > 2 * u16::from(g) && u16::from(r) > 2 * u16::from(b)
}

fn is_green([r, g, b]: [u8; 3]) -> bool {
    g > r && g > b && g - r.min(b) > 40
}

/// Resident memory (KiB), and CPU time (clock ticks) and context
/// switches per thread, of a process.
fn usage(pid: u32) -> (u64, std::collections::HashMap<String, (u64, u64)>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let mut threads = std::collections::HashMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let after = stat.rsplit(')').next().unwrap_or_default();
            let f: Vec<u64> = after
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            // Fields 14 and 15 (utime, stime), counted from after the name.
            let cpu = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
            let st = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let mut switches = 0;
            for l in st.lines() {
                if let Some(v) = l
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    switches += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
            threads.insert(
                t.file_name().to_string_lossy().into_owned(),
                (cpu, switches),
            );
        }
    }
    (rss, threads)
}

/// CPU ticks and context switches between two readings, summed over the
/// threads alive at both (a worker thread that exits in between cannot
/// make the sum go backwards).
fn delta(
    before: &std::collections::HashMap<String, (u64, u64)>,
    after: &std::collections::HashMap<String, (u64, u64)>,
) -> (u64, u64) {
    after
        .iter()
        .fold((0, 0), |(c, s), (tid, (c1, s1))| match before.get(tid) {
            Some((c0, s0)) => (c + c1.saturating_sub(*c0), s + s1.saturating_sub(*s0)),
            None => (c + c1, s + s1),
        })
}

fn pid_of(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == name).then_some(pid)
    })
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn start_daemon(bus: &PrivateBus, server: &Fail2ban) -> Daemon {
    Daemon::start(
        bus,
        &server.socket,
        &[
            "--crash-window",
            "1h",
            "--jail-start-grace",
            "0s",
            "--fail2ban-unit",
            "",
            "--log-level",
            "info",
        ],
        &[],
    )
    .await
}

/// Restarts fail2ban and clears the recovery, ready for the next kill.
async fn bring_back(server: &mut Fail2ban, p: &Health1Proxy<'_>) {
    server.spawn();
    probe_until(p, true, "fail2ban back").await;
    p.dismiss_recovery().await.expect("dismiss");
}

/// Waits until the icon shows green, locating it on the first call, and
/// returns where it is.
async fn wait_green(screen: &Screen, at: &mut Option<(i16, i16)>) -> (i16, i16) {
    let start = Instant::now();
    loop {
        if at.is_none() {
            *at = screen.find(480, is_green);
        }
        if let Some((x, y)) = *at
            && is_green(screen.pixel(x, y))
        {
            return (x, y);
        }
        assert!(start.elapsed() < Duration::from_secs(40), "never green");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The latencies from each SIGKILL, one entry per kill.
#[derive(Default)]
struct Latencies {
    /// To `WentOffline` at a bus client.
    to_signal: Vec<Duration>,
    /// To the icon's pixel turning red.
    to_red: Vec<Duration>,
    /// To the first notification.
    to_note: Vec<Duration>,
}

/// Kills fail2ban once and times the signal, the red pixel at `(x, y)` and
/// the notification, polled in one loop.
async fn time_one_kill(
    server: &mut Fail2ban,
    screen: &Screen,
    (x, y): (i16, i16),
    desktop: &Desktop,
    offline: &mut (impl futures_util::Stream + Unpin),
    latencies: &mut Latencies,
) {
    let notes = desktop.notifications().await.len();
    while let Some(Some(_)) = offline.next().now_or_never() {}
    let killed = Instant::now();
    server.signal_and_wait(Signal::SIGKILL);
    let (mut signal, mut red, mut note) = (None, None, None);
    while signal.is_none() || red.is_none() || note.is_none() {
        if signal.is_none() && matches!(offline.next().now_or_never(), Some(Some(_))) {
            signal = Some(killed.elapsed());
        }
        if red.is_none() && is_red(screen.pixel(x, y)) {
            red = Some(killed.elapsed());
        }
        if note.is_none() && desktop.notifications().await.len() > notes {
            note = Some(killed.elapsed());
        }
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "no red icon or notification"
        );
        tokio::task::yield_now().await;
    }
    latencies.to_signal.push(signal.unwrap_or_default());
    latencies.to_red.push(red.unwrap_or_default());
    latencies.to_note.push(note.unwrap_or_default());
}

fn print_latencies(kills: usize, latencies: &mut Latencies) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("tray applet, {kills} SIGKILLs of fail2ban-server, {cores} cores");
    println!(
        "{:<44} | {:>10} | {:>10} | {:>10}",
        "from SIGKILL to", "median", "p90", "max"
    );
    for (label, v) in [
        (
            "WentOffline at a bus client (baseline)",
            &mut latencies.to_signal,
        ),
        ("the icon's pixel red on the screen", &mut latencies.to_red),
        (
            "the first notification at the server",
            &mut latencies.to_note,
        ),
    ] {
        println!(
            "{label:<44} | {:>10} | {:>10} | {:>10}",
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.9)),
            ms(quantile(v, 1.0))
        );
    }
}

/// Resident memory at the end of the idle spell, and CPU ticks and
/// wake-ups over it.
struct IdleUsage {
    rss: u64,
    cpu: u64,
    wake: u64,
}

/// What the applet, the daemon and the panel's tray plugin (RSS only)
/// use while nothing happens for `idle`; the daemon probes on its own
/// interval meanwhile.
async fn measure_idle(
    applet_pid: u32,
    daemon_pid: u32,
    idle: Duration,
) -> (IdleUsage, IdleUsage, Option<u64>) {
    // Let the last round's changes settle before the spell starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (a0, d0) = (usage(applet_pid), usage(daemon_pid));
    tokio::time::sleep(idle).await;
    let (a1, d1) = (usage(applet_pid), usage(daemon_pid));
    let systray = pid_of("panel-1-systray").map(|pid| usage(pid).0);
    let (a_cpu, a_wake) = delta(&a0.1, &a1.1);
    let (d_cpu, d_wake) = delta(&d0.1, &d1.1);
    let applet = IdleUsage {
        rss: a1.0,
        cpu: a_cpu,
        wake: a_wake,
    };
    let daemon = IdleUsage {
        rss: d1.0,
        cpu: d_cpu,
        wake: d_wake,
    };
    (applet, daemon, systray)
}

fn print_idle(idle: Duration, applet: &IdleUsage, daemon: &IdleUsage, systray: Option<u64>) {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    println!("idle for {} s", idle.as_secs());
    println!(
        "{:<30} | {:>10} | {:>12} | {:>10}",
        "process", "RSS", "CPU", "wake-ups"
    );
    for (label, u) in [
        ("fail2ban-healthd-tray", applet),
        ("fail2ban-healthd (baseline)", daemon),
    ] {
        println!(
            "{label:<30} | {:>7} KiB | {:>9.3} s | {:>10}",
            u.rss,
            u.cpu as f64 / tick,
            u.wake
        );
    }
    if let Some(rss) = systray {
        println!("{:<30} | {:>7} KiB |", "xfce4 panel's tray plugin", rss);
    }
}

fn print_summary(
    idle: Duration,
    latencies: &mut Latencies,
    applet: &IdleUsage,
    daemon: &IdleUsage,
) {
    let to_red = &mut latencies.to_red;
    let to_signal = &mut latencies.to_signal;
    println!(
        "summary|tray: SIGKILL to red icon, median|{}|{} (WentOffline at a client)|{:.2}",
        ms(quantile(to_red, 0.5)),
        ms(quantile(to_signal, 0.5)),
        quantile(to_red, 0.5).as_secs_f64() / quantile(to_signal, 0.5).as_secs_f64().max(1e-9)
    );
    println!(
        "summary|tray: RSS|{} KiB|{} KiB (the daemon)|{:.2}",
        applet.rss,
        daemon.rss,
        applet.rss as f64 / daemon.rss.max(1) as f64
    );
    println!(
        "summary|tray: wake-ups over {} s idle|{}|{} (the daemon)|-",
        idle.as_secs(),
        applet.wake,
        daemon.wake
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let kills = env_or("TRAY_BENCH_KILLS", 10) as usize;
    let idle = Duration::from_secs(env_or("TRAY_BENCH_IDLE_SECS", 60));
    let desktop = Desktop::start().await;
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let daemon = start_daemon(&bus, &server).await;
    let (_c, p) = proxy(&bus).await;
    let applet = Applet::start(&desktop, &bus, &[], &["--settle-time", "0s"]);
    desktop.wait_item(Duration::from_secs(40)).await;
    let screen = Screen::open(desktop.display());

    // The daemon's own signal, at a subscriber: the baseline, polled in
    // the same loop as the pixel and the notifications.
    let mut offline = p.receive_went_offline().await.expect("subscribe");

    let mut latencies = Latencies::default();
    let mut at = None;
    for round in 0..kills {
        if round > 0 {
            bring_back(&mut server, &p).await;
        }
        // Green on the screen before the kill.
        let icon = wait_green(&screen, &mut at).await;
        p.register_activation("gamma").await.expect("activation");
        time_one_kill(
            &mut server,
            &screen,
            icon,
            &desktop,
            &mut offline,
            &mut latencies,
        )
        .await;
    }
    bring_back(&mut server, &p).await;
    print_latencies(kills, &mut latencies);

    let applet_pid = applet.child.as_ref().expect("running").id();
    let daemon_pid = daemon.child.as_ref().expect("running").id();
    let (applet_use, daemon_use, systray) = measure_idle(applet_pid, daemon_pid, idle).await;
    print_idle(idle, &applet_use, &daemon_use, systray);
    print_summary(idle, &mut latencies, &applet_use, &daemon_use);
}
