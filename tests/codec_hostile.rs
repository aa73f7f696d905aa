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

#[test]
fn each_hostile_pickle_is_refused_in_process_quickly() {
    for (name, pickle) in cases() {
        let start = Instant::now();
        let err = codec::decode_reply(&pickle).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, CodecError::Expansive(_)), "{name}: {err:?}");
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
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
