//! The codec against every reply recorded from the five fail2ban versions
//! users run (0.11.2, 1.0.2, 1.1.0, 1.1.1 and upstream head 1.1.2.dev1):
//! each file decodes to the expected typed value or typed error, and no
//! recorded file goes unchecked. Also what the versions share byte for
//! byte, and that the copies kept in `tests/fixtures/` are those of
//! `../shared/fixtures/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use fail2ban_healthd::fail2ban::codec::{self, CodecError, Reply};
use serde_pickle::Value;

use common::jail;

fn decode(version: &str, name: &str) -> Result<Reply, CodecError> {
    let bytes = common::fixture(version, name);
    let body = bytes
        .strip_suffix(codec::END_COMMAND)
        .unwrap_or_else(|| panic!("{version}/{name} lacks the terminator"));
    codec::decode_reply(body)
}

fn ok(version: &str, name: &str) -> Value {
    match decode(version, name) {
        Ok(Reply::Ok(v)) => v,
        other => panic!("{version}/{name}: expected a code-0 reply, got {other:?}"),
    }
}

fn failed(version: &str, name: &str) -> String {
    match decode(version, name) {
        Ok(Reply::Failed(m)) => m,
        other => panic!("{version}/{name}: expected a code-1 reply, got {other:?}"),
    }
}

/// Whether fail2ban `version` knows `stats` and `status --all` (1.1.0 and
/// later); before, both are refused.
fn has_stats(version: &str) -> bool {
    !matches!(version, "0.11.2" | "1.0.2")
}

/// Checks one recorded file and returns whether it was known.
fn check(version: &str, name: &str) -> bool {
    check_plain_reply(version, name)
        || check_jail_reply(version, name)
        || check_refusal(version, name)
        || check_alpha_query(version, name)
}

/// `version`, `ping`, `server-status`, `stop` and `echo`: replies that do
/// not depend on the jails.
fn check_plain_reply(version: &str, name: &str) -> bool {
    match name {
        "version" => assert_eq!(codec::parse_version(&ok(version, name)).unwrap(), version),
        "ping" => assert_eq!(ok(version, name), Value::String("pong".into())),
        "server-status" => assert_eq!(ok(version, name), Value::String("Server ready".into())),
        "stop" => assert_eq!(ok(version, name), Value::None),
        "echo" => assert_eq!(
            ok(version, name),
            Value::List(vec![
                Value::String("hello".into()),
                Value::String("world".into())
            ])
        ),
        _ => return false,
    }
    true
}

/// The jail list, each jail's status and the stats (refused before 1.1.0).
fn check_jail_reply(version: &str, name: &str) -> bool {
    let alpha = jail("alpha", 1, 4, 1, 1);
    let beta = jail("beta", 2, 2, 0, 0);
    match name {
        "status" => assert_eq!(
            codec::parse_jail_list(&ok(version, name)).unwrap(),
            ["alpha", "beta"]
        ),
        "status-alpha-short" | "status-alpha" => {
            assert_eq!(
                codec::parse_jail_status("alpha", &ok(version, name)).unwrap(),
                alpha
            )
        }
        "status-beta" | "status-beta-short" => assert_eq!(
            codec::parse_jail_status("beta", &ok(version, name)).unwrap(),
            beta
        ),
        "stats" if !has_stats(version) => {
            assert_eq!(failed(version, name), "Invalid command")
        }
        "stats" | "status-all-stats" => {
            assert_eq!(
                codec::parse_stats(&ok(version, name)).unwrap(),
                [alpha, beta]
            )
        }
        "status-alpha-stats" => {
            // One jail's stats entry, the same shape as a value of `stats`.
            let Value::List(fields) = ok(version, name) else {
                panic!("not a list")
            };
            assert_eq!(fields.len(), 3);
            assert_eq!(fields[0], Value::String("polling".into()));
        }
        "status-all" | "status-all-short" if !has_stats(version) => {
            assert_eq!(failed(version, name), "--all")
        }
        "status-all" | "status-all-short" => {
            let v = ok(version, name);
            assert_eq!(codec::parse_jail_list(&v).unwrap(), ["alpha", "beta"]);
        }
        _ => return false,
    }
    true
}

/// Unknown jails and commands, garbage and a server shutting down.
fn check_refusal(version: &str, name: &str) -> bool {
    match name {
        "status-unknown-jail" | "get-unknown-jail-maxretry" => {
            assert_eq!(failed(version, name), "nosuchjail")
        }
        "invalid-command" => assert_eq!(failed(version, name), "Invalid command"),
        "garbage" => assert_eq!(
            decode(version, name),
            Err(CodecError::Rejected("could not find MARK".into()))
        ),
        "shutdown" => assert_eq!(decode(version, name), Err(CodecError::ShuttingDown)),
        _ => return false,
    }
    true
}

/// The banned addresses and `get alpha ...` settings.
fn check_alpha_query(version: &str, name: &str) -> bool {
    let ip = Value::Tuple(vec![Value::String("192.0.2.1".into())]);
    match name {
        "banned" => {
            let Value::List(items) = ok(version, name) else {
                panic!("not a list")
            };
            assert_eq!(items.len(), 2);
            let Value::Dict(first) = &items[0] else {
                panic!("not a dict")
            };
            let alpha_ips = first.values().next().unwrap();
            // An IPAddr object's reduce arrives as the tuple of its arguments.
            assert_eq!(alpha_ips, &Value::List(vec![ip.clone()]));
        }
        "get-alpha-banip" | "get-alpha-banned" => {
            assert_eq!(ok(version, name), Value::List(vec![ip.clone()]))
        }
        "get-alpha-banip-with-time" => {
            let Value::List(items) = ok(version, name) else {
                panic!("not a list")
            };
            assert!(matches!(&items[0], Value::String(s) if s.starts_with("192.0.2.1 ")));
        }
        "get-alpha-bantime" | "get-alpha-findtime" => {
            assert_eq!(ok(version, name), Value::I64(600))
        }
        "get-alpha-maxretry" => assert_eq!(ok(version, name), Value::I64(3)),
        "get-alpha-actions" => assert_eq!(
            ok(version, name),
            Value::List(vec![Value::String("dummy".into())])
        ),
        "get-alpha-logpath" => {
            let Value::List(items) = ok(version, name) else {
                panic!("not a list")
            };
            assert!(matches!(&items[0], Value::String(s) if s.ends_with("/log/alpha.log")));
        }
        _ => return false,
    }
    true
}

/// The requests recorded from fail2ban-client, checked by
/// `requests_match_what_fail2ban_client_sends`.
const RECORDED_REQUESTS: [(&str, &[&str]); 2] = [
    ("req-ping.fail2ban-client.bin", &["ping"]),
    ("req-status-alpha.fail2ban-client.bin", &["status", "alpha"]),
];

/// The `.bin` files recorded for `version`, by name.
fn recorded(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".bin"))
        .collect()
}

#[test]
fn every_recorded_reply_decodes_as_expected() {
    for version in common::FIXTURE_VERSIONS {
        let dir = common::fixture_dir(version);
        let files = recorded(&dir);
        let mut checked = 0;
        for file in &files {
            if let Some(name) = file
                .strip_prefix("reply-")
                .and_then(|f| f.strip_suffix(".bin"))
            {
                assert!(check(version, name), "{version}/{file} has no expectation");
                checked += 1;
            } else {
                assert!(
                    version == "1.0.2" && RECORDED_REQUESTS.iter().any(|(f, _)| f == file),
                    "{version}/{file} is neither a reply nor a checked request"
                );
            }
        }
        // What the probe needs, recorded from every version.
        for name in [
            "ping",
            "version",
            "stats",
            "status",
            "status-alpha-short",
            "status-alpha",
            "status-unknown-jail",
        ] {
            let file = format!("reply-{name}.bin");
            assert!(files.contains(&file), "{}: no {file}", dir.display());
        }
        assert!(
            files.contains("reply-status-beta-short.bin")
                || files.contains("reply-status-beta.bin"),
            "{}: no status of beta",
            dir.display()
        );
        let least = if common::vendored_fixture_dir(version).is_dir() {
            25
        } else {
            8
        };
        assert!(checked >= least, "only {checked} replies for {version}");
    }
}

/// The replies the probe relies on, where the versions agree byte for
/// byte (see `../shared/docs/fail2ban-protocol.md`, "Versions").
#[test]
fn versions_agree_byte_for_byte_where_the_probe_relies_on_it() {
    for name in ["ping", "status", "status-unknown-jail"] {
        let first = common::fixture("0.11.2", name);
        for version in common::FIXTURE_VERSIONS {
            assert_eq!(common::fixture(version, name), first, "{version}/{name}");
        }
    }
    // `stats` comes in two forms: refused before 1.1, one shape after.
    for (versions, reference) in [
        (&["0.11.2", "1.0.2"][..], "1.0.2"),
        (&["1.1.0", "1.1.1", "1.1.2.dev1"][..], "1.1.1"),
    ] {
        for version in versions {
            assert_eq!(
                common::fixture(version, "stats"),
                common::fixture(reference, "stats"),
                "{version}/stats"
            );
        }
    }
}

/// The copies in `tests/fixtures/` must not drift from the recordings in
/// `../shared/fixtures/`, which hold every version.
#[test]
fn vendored_fixtures_are_the_shared_recordings() {
    let mut compared = 0;
    for version in common::FIXTURE_VERSIONS {
        let vendored = common::vendored_fixture_dir(version);
        if !vendored.is_dir() {
            continue;
        }
        let shared = common::shared_dir()
            .join("fixtures")
            .join(format!("fail2ban-{version}"));
        let files = recorded(&vendored);
        assert_eq!(files, recorded(&shared), "{version}: the two sets differ");
        for file in &files {
            assert!(
                std::fs::read(vendored.join(file)).unwrap()
                    == std::fs::read(shared.join(file)).unwrap(),
                "{version}/{file} differs from {}",
                shared.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 50, "only {compared} files compared");
}

#[test]
fn requests_match_what_fail2ban_client_sends() {
    for (file, expected) in RECORDED_REQUESTS {
        let bytes = std::fs::read(common::fixture_dir("1.0.2").join(file)).unwrap();
        let mut frames = codec::FrameBuffer::new(1024);
        frames.push(&bytes).unwrap();
        let request = frames.next_frame().unwrap().unwrap();
        let close = frames.next_frame().unwrap().unwrap();
        assert_eq!(frames.next_frame().unwrap(), None);
        let args: Vec<String> = serde_pickle::from_slice(&request, Default::default()).unwrap();
        assert_eq!(args, expected);
        assert_eq!(
            [close.as_slice(), codec::END_COMMAND].concat(),
            codec::CLOSE_COMMAND
        );
        // Ours pickles differently (protocol 3) but carries the same list.
        let ours = codec::encode_request(expected);
        let ours: Vec<String> = serde_pickle::from_slice(
            ours.strip_suffix(codec::END_COMMAND).unwrap(),
            Default::default(),
        )
        .unwrap();
        assert_eq!(ours, expected);
    }
}

#[test]
fn replies_survive_any_chunking() {
    let bytes = common::fixture("1.1.1", "stats");
    for size in [1, 2, 3, 7, 16, 17, 18, 64] {
        let mut frames = codec::FrameBuffer::new(codec::DEFAULT_MAX_REPLY);
        let mut got = Vec::new();
        for chunk in bytes.chunks(size) {
            frames.push(chunk).unwrap();
            while let Some(f) = frames.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 1, "chunk size {size}");
        assert!(matches!(
            codec::decode_reply(&got[0]),
            Ok(Reply::Ok(Value::Dict(_)))
        ));
    }
}

#[test]
fn malformed_replies_are_typed_errors() {
    for (bytes, what) in [
        (&b"\x00\x01garbage"[..], "garbage"),
        (&b""[..], "empty"),
        (&b"\x80\x03K\x05."[..], "a bare int"),
    ] {
        let err = codec::decode_reply(bytes).unwrap_err();
        assert!(
            matches!(err, CodecError::Garbage(_) | CodecError::UnexpectedShape(_)),
            "{what}: {err:?}"
        );
    }
    // A well-formed pair with a code that is neither 0 nor 1.
    let pair = Value::Tuple(vec![Value::I64(7), Value::None]);
    let bytes = serde_pickle::value_to_vec(&pair, Default::default()).unwrap();
    assert!(matches!(
        codec::decode_reply(&bytes),
        Err(CodecError::UnexpectedShape(_))
    ));
    // Shapes the probe relies on, checked rather than assumed.
    assert!(codec::parse_version(&Value::I64(1)).is_err());
    assert!(codec::parse_jail_list(&Value::List(vec![])).is_err());
    assert!(codec::parse_stats(&Value::List(vec![])).is_err());
    let missing_counter = ok("1.0.2", "status");
    assert!(codec::parse_jail_status("alpha", &missing_counter).is_err());
}
