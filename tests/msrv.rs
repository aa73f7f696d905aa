//! The package's `rust-version` is the truth: no dependency in Cargo.lock
//! needs a newer toolchain, and the documents state the same version.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// "1.89" or "1.85.0" as (major, minor, patch).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|e| panic!("rust-version {text:?}: {e}"))
    });
    let major = parts.next().unwrap();
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    assert!(parts.next().is_none(), "rust-version {text:?}");
    (major, minor, patch)
}

/// `cargo metadata` of this package, locked to Cargo.lock.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The package's own rust-version, from Cargo.toml.
fn own_rust_version() -> String {
    let manifest = include_str!("../Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("rust-version = "))
        .expect("Cargo.toml states a rust-version");
    line.trim_start_matches("rust-version = ")
        .trim_matches('"')
        .to_owned()
}

#[test]
fn rust_version_is_at_least_every_dependency_s() {
    let m = metadata();
    let root = m["resolve"]["root"].as_str().unwrap().to_owned();
    let packages = m["packages"].as_array().unwrap();
    let own = packages
        .iter()
        .find(|p| p["id"] == root.as_str())
        .and_then(|p| p["rust_version"].as_str())
        .expect("the package states a rust-version");
    assert_eq!(own, own_rust_version());
    let mut highest: Option<((u64, u64, u64), String)> = None;
    let mut newer = Vec::new();
    for p in packages.iter().filter(|p| p["id"] != root.as_str()) {
        let Some(rv) = p["rust_version"].as_str() else {
            continue;
        };
        let name = format!("{} {} (rust-version {rv})", p["name"], p["version"]);
        if version(rv) > version(own) {
            newer.push(name.clone());
        }
        if highest.as_ref().is_none_or(|(v, _)| version(rv) > *v) {
            highest = Some((version(rv), name));
        }
    }
    assert!(
        newer.is_empty(),
        "rust-version {own} is older than what these dependencies need: {newer:?}"
    );
    // It states the truth, not merely something safe: the newest
    // dependency's need is exactly it.
    let (v, name) = highest.expect("dependencies state rust-versions");
    assert_eq!(
        v,
        version(own),
        "rust-version {own} is newer than any dependency needs (the newest: {name})"
    );
}

#[test]
fn the_documents_state_the_same_toolchain() {
    let own = own_rust_version();
    let wanted = format!("{own} or later");
    for (file, text) in [
        ("README.md", include_str!("../README.md")),
        ("tests/run.sh", include_str!("run.sh")),
        ("demo.sh", include_str!("../demo.sh")),
    ] {
        assert!(
            text.contains(&wanted),
            "{file} does not say the toolchain is {wanted:?}"
        );
        for line in text
            .lines()
            .filter(|l| l.contains(" or later") && l.contains("Rust"))
        {
            assert!(line.contains(&wanted), "{file}: {line}");
        }
    }
}
