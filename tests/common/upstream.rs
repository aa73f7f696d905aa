//! fail2ban releases other than the installed package, run from their
//! upstream source trees.
//!
//! The trees are the upstream git archives in `shared/upstream/` beside the
//! repository (`../shared`, as in CI). Each is unpacked once into a cache
//! under Cargo's target directory, keyed by the tarball's name and size,
//! and run as `python3 TREE/bin/fail2ban-server` with `PYTHONPATH=TREE`:
//! without it a source tree silently imports an installed fail2ban
//! instead, which is why a server started from a tree must answer
//! `version` with the release's own version (see `Fail2ban::spawn`).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// A fail2ban release a test server can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Release {
    /// The installed package: `fail2ban-server` on `PATH` (Debian 12 ships
    /// 1.0.2, which lacks `stats`).
    Installed,
    /// fail2ban 1.1.1, the upstream release.
    V1_1_1,
    /// Upstream head, 1.1.2.dev1 (commit deffcbcd).
    Head,
}

impl Release {
    /// Every release the tests can run, the installed one first.
    pub const ALL: [Release; 3] = [Release::Installed, Release::V1_1_1, Release::Head];

    /// The source tarball in `shared/upstream/`, for releases run from one.
    pub fn tarball(self) -> Option<&'static str> {
        match self {
            Release::Installed => None,
            Release::V1_1_1 => Some("fail2ban-1.1.1.tar.gz"),
            Release::Head => Some("fail2ban-1.1.2.dev1-deffcbcd.tar.gz"),
        }
    }

    /// What the server must answer to `version`; `None` for the installed
    /// package, which is whatever the distribution ships.
    pub fn expected_version(self) -> Option<&'static str> {
        match self {
            Release::Installed => None,
            Release::V1_1_1 => Some("1.1.1"),
            Release::Head => Some("1.1.2.dev1"),
        }
    }

    /// The unpacked source tree (the directory holding `bin/` and
    /// `fail2ban/`), unpacking it on first use; `None` for the installed
    /// package. A missing tarball fails the test.
    pub fn tree(self) -> Option<PathBuf> {
        self.tarball().map(tree)
    }

    /// A short name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Release::Installed => "the installed package",
            Release::V1_1_1 => "the upstream release, from source",
            Release::Head => "upstream head deffcbcd, from source",
        }
    }
}

/// `shared/` beside the repository: recorded fixtures, docs and upstream
/// sources that CI copies next to a fresh clone.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository has a parent directory")
        .join("shared")
}

/// `shared/upstream/NAME`, or a failed test saying where it was expected.
pub fn tarball_path(name: &str) -> PathBuf {
    let path = shared_dir().join("upstream").join(name);
    assert!(
        path.is_file(),
        "fail2ban source tarball {} is missing: these tests expect a copy of \
         shared/ beside the repository (../shared), holding upstream/{name}",
        path.display()
    );
    path
}

/// The source tree in `shared/upstream/TARBALL`, unpacked once.
///
/// Within a process a lock makes the first caller unpack and the others
/// wait. Across processes (test binaries run at once, engineers sharing a
/// target directory) each unpacks into a private directory and renames it
/// into place; whoever loses the race uses the winner's copy.
pub fn tree(tarball: &str) -> PathBuf {
    static TREES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut trees = TREES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(tree) = trees.get(tarball) {
        return tree.clone();
    }
    let source = tarball_path(tarball);
    let size = fs::metadata(&source).expect("stat tarball").len();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fail2ban-upstream");
    fs::create_dir_all(&cache).expect("create the upstream cache");
    let stem = tarball.strip_suffix(".tar.gz").unwrap_or(tarball);
    let unpacked = cache.join(format!("{stem}-{size}"));
    if !unpacked.is_dir() {
        let scratch = tempfile::Builder::new()
            .prefix(".unpacking-")
            .tempdir_in(&cache)
            .expect("scratch dir");
        let out = Command::new(super::require_program("tar", "tar"))
            .arg("-xzf")
            .arg(&source)
            .arg("-C")
            .arg(scratch.path())
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "unpacking {}: {out:?}",
            source.display()
        );
        // A rename onto an existing directory fails: another process got
        // there first, and its copy is as good as ours.
        if fs::rename(scratch.path(), &unpacked).is_err() {
            assert!(
                unpacked.is_dir(),
                "could not move the unpacked {tarball} into {}",
                unpacked.display()
            );
        }
    }
    // Upstream archives hold one top directory, e.g. `fail2ban-deffcbcd/`.
    let roots: Vec<PathBuf> = fs::read_dir(&unpacked)
        .expect("read the unpacked tree")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("bin/fail2ban-server").is_file())
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "{} should hold one fail2ban tree with bin/fail2ban-server",
        unpacked.display()
    );
    let root = roots.into_iter().next().expect("one root");
    trees.insert(tarball.to_owned(), root.clone());
    root
}

/// The Python interpreter `python3` on `PATH` resolves to. Asked once:
/// starting the interpreter directly spares every server and client start
/// a wrapper's cost (pyenv's shims are shell scripts), and makes the
/// spawned process the server itself.
pub fn python3() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let python = super::require_program("python3", "python3");
            let out = Command::new(&python)
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
            assert!(out.status.success(), "{} failed: {out:?}", python.display());
            let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if exe.is_empty() {
                python
            } else {
                PathBuf::from(exe)
            }
        })
        .clone()
}

/// A command running `TREE/bin/PROGRAM` with the tree's own modules.
pub fn tree_command(tree: &Path, program: &str) -> Command {
    let mut cmd = Command::new(python3());
    cmd.arg(tree.join("bin").join(program))
        .env("PYTHONPATH", tree);
    cmd
}
