//! Hostile replies at the 16 MiB cap: how long the slowest reply the
//! pickle guard still accepts (or must read to the end before refusing)
//! keeps a probe past its deadline, and how much memory the worst probe of
//! 64 jails takes, each beside a normal reply of the same number of jails
//! in the same run.
//!
//! Run: `cargo bench --bench hostile`. Environment: `HOSTILE_BENCH_DEADLINE_MS`
//! (the probe's deadline, default 1000), `HOSTILE_BENCH_ROUNDS` (default 3;
//! each figure is the slowest round).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::fake::{Action, FakeServer, pickled_str, raw_reply, run_probe};
use fail2ban_healthd::fail2ban::codec::{self, DEFAULT_MAX_REPLY};
use fail2ban_healthd::fail2ban::pickle_guard::{self, Budget};
use fail2ban_healthd::fail2ban::{ProbeConfig, Prober};
use serde_pickle::{HashableValue, Value};

/// The reply's value (pickle opcodes) for a size parameter `n`.
type Shape = (&'static str, Box<dyn Fn(usize) -> Vec<u8>>);

fn list_of(n: usize, item: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut p = b"(".to_vec();
    for i in 0..n {
        p.extend(item(i));
    }
    p.push(b'l');
    p
}

fn dict_of(n: usize, key: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut p = b"}(".to_vec();
    for i in 0..n {
        p.extend(key(i));
        p.extend(b"K\x00");
    }
    p.push(b'u');
    p
}

fn long1(i: usize) -> Vec<u8> {
    let mut p = vec![0x8a, 32];
    let mut bytes = [0x7fu8; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    p.extend(bytes);
    p
}

/// `n` memo references to one list of 1024 `None`.
fn memo_refs_to_nones(n: usize) -> Vec<u8> {
    let mut p = b"(".to_vec();
    p.extend(b"N".repeat(1024));
    p.extend(b"l\x940(");
    p.extend(b"h\x00".repeat(n));
    p.push(b'l');
    p
}

/// `n` memo references to one 64 KiB string.
fn memo_refs_to_string(n: usize) -> Vec<u8> {
    let mut p = b"(".to_vec();
    p.extend(pickled_str(&"a".repeat(64 << 10)));
    p.extend(b"\x94");
    p.extend(b"h\x00".repeat(n));
    p.push(b'l');
    p
}

/// A list of `n` lists, each nested 62 deep.
fn nested_lists(n: usize) -> Vec<u8> {
    list_of(n, |_| {
        let mut p = b"]".repeat(62);
        p.extend(b"a".repeat(61));
        p
    })
}

/// A list of 1024 `None`, then `n` times DUP and POP.
fn dup_pop(n: usize) -> Vec<u8> {
    let mut p = b"(".to_vec();
    p.extend(b"N".repeat(1024));
    p.push(b'l');
    p.extend(b"20".repeat(n));
    p
}

/// `None`, then `n` times MARK and POP_MARK.
fn mark_pop_mark(n: usize) -> Vec<u8> {
    let mut p = b"N".to_vec();
    p.extend(b"(1".repeat(n));
    p
}

fn shapes() -> Vec<Shape> {
    vec![
        (
            "list of 32-byte LONG1 integers",
            Box::new(|n| list_of(n, long1)),
        ),
        (
            "list of 32-digit LONG integers",
            Box::new(|n| list_of(n, |i| format!("L{:032}L\n", i).into_bytes())),
        ),
        (
            "dict keyed by 32-byte integers",
            Box::new(|n| dict_of(n, long1)),
        ),
        (
            "list of 1-byte strings",
            Box::new(|n| list_of(n, |_| b"\x8c\x01a".to_vec())),
        ),
        (
            "dict keyed by 1 KiB strings, common prefix",
            Box::new(|n| dict_of(n, |i| pickled_str(&format!("{:>1024}", i)))),
        ),
        ("one string", Box::new(|n| pickled_str(&"a".repeat(n)))),
        (
            "memo references to a list of 1024 None",
            Box::new(memo_refs_to_nones),
        ),
        (
            "memo references to a 64 KiB string",
            Box::new(memo_refs_to_string),
        ),
        ("lists nested 62 deep, repeated", Box::new(nested_lists)),
        ("DUP and POP of a list of 1024 None", Box::new(dup_pop)),
        (
            "one FLOAT of n digits",
            Box::new(|n| format!("F1{}\n", "0".repeat(n)).into_bytes()),
        ),
        (
            "one escaped STRING",
            Box::new(|n| format!("S'{}'\n", "\\x41".repeat(n)).into_bytes()),
        ),
        (
            "one escaped UNICODE",
            Box::new(|n| format!("V{}\n", "\\u0041".repeat(n)).into_bytes()),
        ),
        ("MARK and POP_MARK", Box::new(mark_pop_mark)),
    ]
}

/// The whole reply `(0, value)` as a frame (no terminator).
fn frame(value: &[u8]) -> Vec<u8> {
    let mut f = raw_reply(0, value);
    f.truncate(f.len() - codec::END_COMMAND.len());
    f
}

/// What a probe spends before its `stats` reply: the `version` reply.
fn fresh_budget() -> Budget {
    let b = Budget::default();
    let mut version = common::fixture("1.1.1", "version");
    version.truncate(version.len() - codec::END_COMMAND.len());
    pickle_guard::check(&version, &b).unwrap();
    b
}

fn accepted(value: &[u8]) -> bool {
    pickle_guard::check(&frame(value), &fresh_budget()).is_ok()
}

/// The largest `n` whose reply fits the cap and which the guard accepts,
/// and the largest that fits the cap.
fn sizes(make: &dyn Fn(usize) -> Vec<u8>) -> (Option<usize>, usize) {
    let fits = |n: usize| frame(&make(n)).len() <= DEFAULT_MAX_REPLY;
    let mut hi = 1;
    while fits(hi * 2) {
        hi *= 2;
    }
    let (mut lo, mut top) = (hi, hi * 2);
    while top - lo > 1 {
        let mid = (lo + top) / 2;
        if fits(mid) { lo = mid } else { top = mid }
    }
    let cap = lo;
    if !accepted(&make(1)) {
        return (None, cap);
    }
    let (mut lo, mut top) = (1, cap + 1);
    if accepted(&make(cap)) {
        return (Some(cap), cap);
    }
    while top - lo > 1 {
        let mid = (lo + top) / 2;
        if accepted(&make(mid)) {
            lo = mid
        } else {
            top = mid
        }
    }
    (Some(lo), cap)
}

/// A `stats` reply of `jails` jails, as fail2ban 1.1 sends it.
fn normal_stats(jails: usize) -> Vec<u8> {
    let mut map = std::collections::BTreeMap::new();
    for i in 0..jails {
        map.insert(
            HashableValue::String(format!("jail{i:02}")),
            Value::List(vec![
                Value::String("polling".into()),
                Value::Tuple(vec![Value::I64(1), Value::I64(4)]),
                Value::Tuple(vec![Value::I64(1), Value::I64(1)]),
            ]),
        );
    }
    common::fake::ok_reply(Value::Dict(map))
}

/// One probe whose `stats` reply (`reply`, framed) comes `delay` after
/// the request: how long the probe took and whether it was online.
fn timed_probe(
    rt: &tokio::runtime::Runtime,
    reply: &[u8],
    delay: Duration,
    deadline: Duration,
) -> (Duration, String) {
    let reply = reply.to_vec();
    rt.block_on(async move {
        let server = FakeServer::start(move |r| match r.join(" ").as_str() {
            "version" => Action::Send(common::fixture("1.1.1", "version")),
            _ => Action::SendAfter(delay, reply.clone()),
        });
        let mut prober = Prober::new(ProbeConfig {
            socket: server.socket.clone(),
            timeout: deadline,
            max_reply: DEFAULT_MAX_REPLY,
        });
        let start = Instant::now();
        let result = prober.probe().await;
        let took = start.elapsed();
        let verdict = match result {
            Ok(s) => format!("online, {} jails", s.jails.len()),
            Err(e) => match e {
                fail2ban_healthd::fail2ban::Error::Protocol(c) => {
                    let m = c.to_string();
                    format!("refused: {}", &m[..m.len().min(60)])
                }
                other => format!("{}", other.offline_reason()),
            },
        };
        (took, verdict)
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One reply of table (a): its label, size parameter and framed bytes.
struct ReplyRow {
    name: String,
    n: usize,
    reply: Vec<u8>,
}

/// The baseline, then each shape at its largest accepted size and, if
/// larger, at the 16 MiB cap.
fn deadline_rows() -> Vec<ReplyRow> {
    let mut rows = vec![ReplyRow {
        name: "normal stats of 64 jails (baseline)".into(),
        n: 64,
        reply: normal_stats(64),
    }];
    for (name, make) in shapes() {
        let (accepted_n, cap_n) = sizes(&make);
        if let Some(n) = accepted_n {
            rows.push(ReplyRow {
                name: format!("{name}, largest accepted"),
                n,
                reply: raw_reply(0, &make(n)),
            });
        }
        if accepted_n != Some(cap_n) {
            rows.push(ReplyRow {
                name: format!("{name}, 16 MiB"),
                n: cap_n,
                reply: raw_reply(0, &make(cap_n)),
            });
        }
    }
    rows
}

/// The probe's timing, shared by every row of table (a).
struct Timing {
    rounds: usize,
    deadline: Duration,
    /// When the reply is sent after the request.
    late: Duration,
}

/// Table (a)'s figures for one reply: the slowest decode, how far past
/// the deadline the slowest probe ended (negative: how far before it the
/// earliest-ending ended, when no probe ran over), and the last verdict.
struct PastDeadline {
    decode: Duration,
    over_ms: f64,
    verdict: String,
}

fn measure_past_deadline(
    rt: &tokio::runtime::Runtime,
    row: &ReplyRow,
    timing: &Timing,
) -> PastDeadline {
    let reply = &row.reply;
    let deadline = timing.deadline;
    let body = &reply[..reply.len() - codec::END_COMMAND.len()];
    let mut decode = Duration::ZERO;
    let mut over = Duration::ZERO;
    let mut over_neg = true;
    let mut verdict = String::new();
    for _ in 0..timing.rounds {
        let start = Instant::now();
        let _ = codec::decode_reply_within(body, &fresh_budget());
        decode = decode.max(start.elapsed());
        let (took, v) = timed_probe(rt, reply, timing.late, deadline);
        verdict = v;
        if took > deadline {
            over_neg = false;
            over = over.max(took - deadline);
        } else if over_neg {
            over = over.max(deadline - took);
        }
    }
    let over_ms = if over_neg { -ms(over) } else { ms(over) };
    PastDeadline {
        decode,
        over_ms,
        verdict,
    }
}

/// (a) How long past its deadline a probe runs on each reply.
fn deadline_table(rt: &tokio::runtime::Runtime, timing: &Timing) {
    println!(
        "(a) one `stats` reply sent {} ms after the request, probe deadline {} ms; \
         slowest of {} rounds",
        timing.late.as_millis(),
        timing.deadline.as_millis(),
        timing.rounds
    );
    println!(
        "{:<46} {:>10} {:>9} {:>11} {:>11}  verdict",
        "reply", "n", "bytes", "decode ms", "over ms"
    );
    let mut worst_over = f64::MIN;
    let mut worst_name = String::new();
    let mut baseline_over = 0.0;
    for row in &deadline_rows() {
        let PastDeadline {
            decode,
            over_ms,
            verdict,
        } = measure_past_deadline(rt, row, timing);
        let name = &row.name;
        if name.contains("baseline") {
            baseline_over = over_ms;
        }
        if over_ms > worst_over && !name.contains("baseline") {
            worst_over = over_ms;
            worst_name = name.clone();
        }
        println!(
            "{:<46} {:>10} {:>9} {:>11.1} {:>11.1}  {verdict}",
            name,
            row.n,
            row.reply.len(),
            ms(decode),
            over_ms
        );
    }
    println!(
        "worst: {worst_name}: {worst_over:.1} ms past the deadline (target: at most 100 ms): {}",
        if worst_over <= 100.0 { "met" } else { "MISSED" }
    );
    println!(
        "summary|hostile: slowest reply within 16 MiB, past the deadline|{worst_over:+.1} ms|normal reply: {baseline_over:+.1} ms|target +100 ms"
    );
}

/// fail2ban 1.0's `status` reply listing 64 jails.
fn status_of_64_jails() -> Vec<u8> {
    let names: Vec<String> = (0..64).map(|i| format!("jail{i:02}")).collect();
    common::fake::ok_reply(Value::List(vec![
        Value::Tuple(vec![Value::String("Number of jail".into()), Value::I64(64)]),
        Value::Tuple(vec![
            Value::String("Jail list".into()),
            Value::String(names.join(", ")),
        ]),
    ]))
}

/// The `probe --json` report in a few words.
fn report_verdict(report: &serde_json::Value) -> String {
    match report["offline_reason"].as_str() {
        None => format!(
            "online, {} jails",
            report["jails"].as_array().unwrap().len()
        ),
        Some(r) => format!(
            "{r}: {}",
            &report["error"].as_str().unwrap_or("")
                [..report["error"].as_str().unwrap_or("").len().min(60)]
        ),
    }
}

/// The binary's peak RSS over `rounds` runs of `probe` of 64 jails, each
/// `status JAIL short` answered with `jail_reply`, and the last verdict.
fn probe_64_jails(
    rt: &tokio::runtime::Runtime,
    rounds: usize,
    status: &[u8],
    jail_reply: Vec<u8>,
) -> (u64, String) {
    let status = status.to_vec();
    rt.block_on(async move {
        let server = FakeServer::start(move |r| match r.first().map(String::as_str) {
            Some("version") => Action::Send(common::fixture("1.0.2", "version")),
            Some("status") if r.len() == 1 => Action::Send(status.clone()),
            Some("status") => Action::Send(jail_reply.clone()),
            _ => Action::Send(common::fixture("1.0.2", "invalid-command")),
        });
        let socket = server.socket.clone();
        tokio::task::spawn_blocking(move || {
            let mut peak = 0;
            let mut verdict = String::new();
            for _ in 0..rounds {
                let run = run_probe(&socket, &["--json", "--timeout", "20"], &[]);
                peak = peak.max(run.peak_rss_kib);
                verdict = report_verdict(&run.json());
            }
            (peak, verdict)
        })
        .await
        .unwrap()
    })
}

/// (b) the binary's peak RSS for a probe of 64 jails through the
/// per-jail fallback, each `status JAIL short` answered with the shape.
fn rss_table(rt: &tokio::runtime::Runtime, rounds: usize) {
    println!(
        "(b) the binary's peak RSS, `probe` of 64 jails (fallback: status JAIL short), \
         each reply the shape at its largest accepted size, or 1/8 of it"
    );
    let status = status_of_64_jails();
    let probe64 = |jail_reply: Vec<u8>| probe_64_jails(rt, rounds, &status, jail_reply);
    let (idle, idle_verdict) = probe64(common::fixture("1.0.2", "status-beta"));
    println!(
        "{:<58} {:>10} {:>12}  verdict",
        "reply to each status JAIL short", "peak KiB", "over KiB"
    );
    println!(
        "{:<58} {:>10} {:>12}  {idle_verdict}",
        "normal status (baseline)", idle, 0
    );
    let mut worst = (0u64, String::new());
    for (name, make) in shapes() {
        let Some(n) = sizes(&make).0 else { continue };
        for (label, k) in [("largest", n), ("1/8", (n / 8).max(1))] {
            let (rss, verdict) = probe64(raw_reply(0, &make(k)));
            let over = rss.saturating_sub(idle);
            if over > worst.0 {
                worst = (over, format!("{name}, {label}"));
            }
            println!(
                "{:<58} {:>10} {:>12}  {verdict}",
                format!("{name}, {label} (n={k})"),
                rss,
                over
            );
        }
    }
    println!(
        "summary|hostile: peak RSS of the worst 64-jail probe|{} KiB|normal replies: {idle} KiB|+{} KiB (target +65536)",
        idle + worst.0,
        worst.0
    );
    println!(
        "worst: {}: {} KiB over the baseline (target: at most 65536 KiB): {}",
        worst.1,
        worst.0,
        if worst.0 <= 64 * 1024 {
            "met"
        } else {
            "MISSED"
        }
    );
}

fn main() {
    let deadline = Duration::from_millis(env_or("HOSTILE_BENCH_DEADLINE_MS", 1000));
    let rounds = env_or("HOSTILE_BENCH_ROUNDS", 3).max(1) as usize;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let timing = Timing {
        rounds,
        deadline,
        // The reply arrives this long before the deadline, so that all of
        // its decoding falls past it unless it is quick.
        late: deadline - Duration::from_millis(50),
    };
    deadline_table(&rt, &timing);
    println!();
    rss_table(&rt, rounds);
}
