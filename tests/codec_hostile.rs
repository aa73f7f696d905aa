//! Memory-hungry pickles, each named after what it abuses, sent by a fake
//! fail2ban to the real binary under an address-space limit: every one is
//! refused as a protocol error, quickly, and the binary stays within its
//! memory.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::fake::{Action, FakeServer};
use fail2ban_healthd::fail2ban::codec::{self, CodecError, END_COMMAND};

/// `(0, [l0, l0, ...])` where `l(k+1)` holds `l(k)` ten times: a few
/// hundred bytes that decode to 10^levels objects.
fn billion_laughs(levels: u8) -> Vec<u8> {
    let mut p = b"\x80\x04K\x00(".to_vec();
    p.extend(b"N".repeat(10));
    p.extend(b"l\x94");
    for k in 0..levels {
        p.push(b'(');
        for _ in 0..10 {
            p.extend([b'h', k]);
        }
        p.extend(b"l\x94");
    }
    p.extend(b"\x86.");
    p
}

/// `(0, [big] * n)`: one memoized list of `items` None, referenced `n`
/// times, every reference a 2-byte opcode.
fn long_repeats(items: usize, n: usize) -> Vec<u8> {
    let mut p = b"\x80\x04K\x00(".to_vec();
    p.extend(b"N".repeat(items));
    p.extend(b"l\x94(");
    for _ in 0..n {
        p.extend(b"h\x00");
    }
    p.extend(b"l\x86.");
    p
}

/// A 1 MiB string memoized and referenced 10 000 times.
fn repeated_string() -> Vec<u8> {
    let mut p = b"\x80\x04K\x00X".to_vec();
    p.extend((1u32 << 20).to_le_bytes());
    p.extend(vec![b'a'; 1 << 20]);
    p.extend(b"\x94(");
    for _ in 0..10_000 {
        p.extend(b"h\x00");
    }
    p.extend(b"l\x86.");
    p
}

/// Lists nested 100 000 deep: recursion in decoding, printing or dropping
/// would overflow the stack.
fn deep_nesting() -> Vec<u8> {
    let mut p = b"\x80\x04K\x00".to_vec();
    p.extend(b"]".repeat(100_000));
    p.extend(b"a".repeat(99_999));
    p.extend(b"\x86.");
    p
}

/// A memo index of 2^32 - 1, put and got.
fn huge_memo_index() -> Vec<u8> {
    b"\x80\x04K\x00]r\xff\xff\xff\xff0j\xff\xff\xff\xff\x86.".to_vec()
}

/// Ten million None in one list: no trick, just many small objects
/// within the 16 MiB cap.
fn many_objects() -> Vec<u8> {
    let mut p = b"\x80\x04K\x00(".to_vec();
    p.extend(b"N".repeat(10_000_000));
    p.extend(b"l\x86.");
    p
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("billion_laughs", billion_laughs(12)),
        ("long_repeats", long_repeats(100_000, 100_000)),
        ("repeated_string", repeated_string()),
        ("deep_nesting", deep_nesting()),
        ("many_objects", many_objects()),
    ]
}

/// Each refused by the guard, in well under a second (a debug build on a
/// loaded machine took up to 0.7 s, for `long_repeats`); the bound only
/// proves that none is expanded, which would take minutes or all memory.
/// The figures are `cargo bench --bench hostile`'s.
#[test]
fn each_hostile_pickle_is_refused_in_process_quickly() {
    for (name, pickle) in cases() {
        let start = Instant::now();
        let err = codec::decode_reply(&pickle).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, CodecError::Expansive(_)), "{name}: {err:?}");
        println!("{name}: refused in {took:?}");
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
    }
    // A huge memo index is no problem: a sparse memo, a small value.
    let reply = codec::decode_reply(&huge_memo_index()).unwrap();
    assert!(matches!(reply, codec::Reply::Ok(_)));
}

/// The binary, under a 256 MiB address-space limit, probing a fake that
/// answers `version` with each pickle: a protocol error naming the limit.
#[tokio::test]
async fn each_hostile_pickle_leaves_the_binary_memory_bounded() {
    for (name, pickle) in cases() {
        let mut framed = pickle.clone();
        framed.extend_from_slice(END_COMMAND);
        let server = FakeServer::start(move |_| Action::Send(framed.clone()));
        let socket = server.socket.clone();
        let out = tokio::task::spawn_blocking(move || {
            common::probe_binary_under_limit(&socket, 256 << 20)
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["offline_reason"], "protocol_error", "{name}");
        assert!(
            report["error"]
                .as_str()
                .unwrap()
                .contains("refused before decoding"),
            "{name}: {report}"
        );
    }
}

/// The frames of a fuzz finding in `tests/fuzz-findings/`, read as its
/// target reads it (`decode_reply-`: one frame; `framing-`: four bytes of
/// chunk sizes, then a stream).
fn finding(name: &str) -> Vec<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-findings")
        .join(name);
    let data = std::fs::read(&path).unwrap();
    if name.starts_with("framing-") {
        let mut buf = codec::FrameBuffer::new(64 * 1024);
        buf.push(&data[4..]).unwrap();
        std::iter::from_fn(|| buf.next_frame().ok().flatten()).collect()
    } else {
        vec![data]
    }
}

/// Refused by the guard, before serde-pickle (whose sort panicked on it)
/// sees it: the decoder's `catch_unwind` is only a second line.
fn refused_by_the_guard(frames: &[Vec<u8>]) -> bool {
    frames.iter().any(
        |f| matches!(codec::decode_reply(f), Err(CodecError::Garbage(m)) if m.contains("float")),
    )
}

/// Found by fuzzing `decode_reply`: dicts keyed by floats made
/// serde-pickle's sort of the keys panic.
#[test]
fn float_dict_keys_are_refused_not_a_panic() {
    for name in [
        "decode_reply-float-keys-1.bin",
        "decode_reply-float-keys-2.bin",
    ] {
        assert!(refused_by_the_guard(&finding(name)), "{name}");
    }
}

/// Found by fuzzing `framing`: a frozenset of floats, the same panic.
#[test]
fn float_set_members_are_refused_not_a_panic() {
    let frames = finding("framing-float-set-members.bin");
    assert!(!frames.is_empty());
    assert!(refused_by_the_guard(&frames));
}

/// Every finding on file has a test above.
#[test]
fn every_fuzz_finding_is_tested() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-findings");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "decode_reply-float-keys-1.bin",
            "decode_reply-float-keys-2.bin",
            "framing-float-set-members.bin"
        ]
    );
}

/// The binary's `probe --json --timeout SECS` against a fake answering
/// every request with `reply`.
async fn probe_hostile(reply: Vec<u8>, timeout: &str) -> (common::fake::ProbeRun, FakeServer) {
    let server = FakeServer::start(move |_| Action::Send(reply.clone()));
    let socket = server.socket.clone();
    let timeout = timeout.to_owned();
    let run = tokio::task::spawn_blocking(move || {
        common::fake::run_probe(&socket, &["--json", "--timeout", &timeout], &[])
    })
    .await
    .unwrap();
    (run, server)
}

/// A reply holding one integer of 2 000 000 decimal digits, as text
/// (`INT`, `LONG`) and in binary (`LONG4`, the same magnitude in 830 483
/// bytes), decoded by serde-pickle in quadratic time: refused at once,
/// and `probe --timeout 2` answers with the guard's protocol error, not a
/// timeout. The binary's whole run (start, a 2 MB reply, the refusal) took
/// up to 0.7 s in a debug build on a loaded machine; the bound is
/// generous.
#[tokio::test]
async fn a_two_million_digit_integer_is_refused_within_the_deadline() {
    let digits = "9".repeat(2_000_000);
    let mut long4 = b"\x8b".to_vec();
    long4.extend(830_483u32.to_le_bytes());
    long4.extend(vec![0x5a; 830_483]);
    let forms = [
        ("INT", format!("I{digits}\n").into_bytes()),
        ("LONG", format!("L{digits}L\n").into_bytes()),
        ("LONG4", long4),
    ];
    for (name, int) in forms {
        let (run, _server) = probe_hostile(common::fake::raw_reply(0, &int), "2").await;
        assert_eq!(run.status, Some(1), "{name}: {run:?}");
        let report = run.json();
        assert_eq!(
            report["offline_reason"], "protocol_error",
            "{name}: {report}"
        );
        let error = report["error"].as_str().unwrap();
        assert!(error.contains("an integer of"), "{name}: {error}");
        println!("{name}: the binary answered in {:?}", run.elapsed);
        assert!(
            run.elapsed < Duration::from_secs(10),
            "{name}: took {:?} for a 2 s deadline",
            run.elapsed
        );
    }
}

/// 32 jails, each answering `status JAIL short` with a 1 MiB string
/// referenced 8 times (each reply 8 MiB once decoded, which alone is
/// allowed): the probe's budget spans all its replies, so the probe is
/// refused after the first few, and the binary's peak memory stays far
/// below the 256 MiB the 32 decoded replies would take.
#[tokio::test]
async fn thirty_two_large_replies_are_refused_by_the_probe_budget() {
    let mut big = b"(".to_vec();
    big.extend(common::fake::pickled_str(&"a".repeat(1 << 20)));
    big.extend(b"\x94");
    big.extend(b"h\x00".repeat(7));
    big.push(b'l');
    let big = common::fake::raw_reply(0, &big);
    // One such reply alone decodes.
    let mut frame = codec::FrameBuffer::new(codec::DEFAULT_MAX_REPLY);
    frame.push(&big).unwrap();
    assert!(codec::decode_reply(&frame.next_frame().unwrap().unwrap()).is_ok());

    let names: Vec<String> = (0..32).map(|i| format!("j{i:02}")).collect();
    let list = names.join(", ");
    let server = FakeServer::start(move |r| match r.first().map(String::as_str) {
        Some("version") => Action::Send(common::fixture("1.0.2", "version")),
        Some("status") if r.len() == 1 => {
            Action::Send(common::fake::ok_reply(serde_pickle::Value::List(vec![
                serde_pickle::Value::Tuple(vec![
                    serde_pickle::Value::String("Number of jail".into()),
                    serde_pickle::Value::I64(32),
                ]),
                serde_pickle::Value::Tuple(vec![
                    serde_pickle::Value::String("Jail list".into()),
                    serde_pickle::Value::String(list.clone()),
                ]),
            ])))
        }
        Some("status") => Action::Send(big.clone()),
        _ => Action::Send(common::fixture("1.0.2", "invalid-command")),
    });
    let socket = server.socket.clone();
    let run = tokio::task::spawn_blocking(move || {
        common::fake::run_probe(&socket, &["--json", "--timeout", "20"], &[])
    })
    .await
    .unwrap();
    assert_eq!(run.status, Some(1), "{run:?}");
    let report = run.json();
    assert_eq!(report["offline_reason"], "protocol_error", "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("the replies would expand past"),
        "{report}"
    );
    // Several replies were answered before the refusal (the fake answers
    // one request after the other, and stops when the probe leaves): the
    // refusal came from the budget of the whole probe, not from one reply.
    let asked = server
        .requests()
        .iter()
        .filter(|r| r.len() == 3 && r[0] == "status")
        .count();
    assert!(asked >= 3, "{asked} replies");
    assert!(
        run.peak_rss_kib < 128 * 1024,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );
}

/// An exception whose message is 1 MiB of text laced with control
/// characters: the probe's output keeps a few hundred bytes of it, with
/// the control characters escaped, in text and in JSON.
#[tokio::test]
async fn an_oversize_exception_text_is_cut_and_cleaned() {
    let message = "bad\n\x1b[31mMAINPID=1\0\u{85}".repeat(1 << 16);
    let mut exception = b"\x8c\x08builtins\x8c\x09Exception\x93".to_vec();
    exception.extend(common::fake::pickled_str(&message));
    exception.extend(b"\x85R");
    let reply = common::fake::raw_reply(1, &exception);
    let (run, _server) = probe_hostile(reply.clone(), "5").await;
    assert_eq!(run.status, Some(1), "{run:?}");
    common::fake::assert_no_control(&run.stdout);
    let report = run.json();
    assert_eq!(report["offline_reason"], "protocol_error");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.starts_with("fail2ban refused the command: bad\\u{a}"),
        "{error}"
    );
    assert!(error.ends_with('…'), "{error}");
    assert!(error.len() < 1024, "{} bytes", error.len());
    assert!(fail2ban_healthd::text::printable(error), "{error:?}");

    let server = FakeServer::start(move |_| Action::Send(reply.clone()));
    let socket = server.socket.clone();
    let text = tokio::task::spawn_blocking(move || common::fake::run_probe(&socket, &[], &[]))
        .await
        .unwrap();
    assert_eq!(text.status, Some(1), "{text:?}");
    common::fake::assert_no_control(&text.stdout);
    assert_eq!(text.stdout.lines().count(), 1, "{:?}", text.stdout);
    assert!(text.stdout.len() < 1200, "{} bytes", text.stdout.len());
}
