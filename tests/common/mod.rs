//! Shared test support: a real private `fail2ban-server` (the installed
//! package, or an upstream release from its source tree, see [`upstream`])
//! and an in-process fake for what a real server will not do.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

pub mod bus;
pub mod desktop;
pub mod fake;
pub mod upstream;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fail2ban_healthd::fail2ban::codec;
use fail2ban_healthd::health::JailStats;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_pickle::Value;

pub use upstream::{Release, shared_dir};

/// The path of a program the test needs. A missing one fails the test with
/// the command that installs it: these tests never skip.
pub fn require_program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} is required by this test and is missing: apt-get install -y {package}");
}

/// A real fail2ban-server in a temporary directory, killed on drop.
pub struct Fail2ban {
    dir: tempfile::TempDir,
    child: Option<Child>,
    release: Release,
    /// The source tree a release other than the installed one runs from.
    tree: Option<PathBuf>,
    pub socket: PathBuf,
    pub jails: Vec<String>,
}

impl Fail2ban {
    /// Starts a server of the installed package with the jails `alpha` and
    /// `beta`.
    pub fn start() -> Self {
        Self::start_with(&["alpha", "beta"])
    }

    /// Starts a server of the installed package with these jails (polling
    /// backend, a dummy action of our own that appends banned addresses to
    /// `run/banned`), and waits until it answers with all of them running
    /// and following their log files.
    pub fn start_with(jails: &[&str]) -> Self {
        Self::start_release_with(Release::Installed, jails)
    }

    /// Starts a server of `release` with the jails `alpha` and `beta`.
    pub fn start_release(release: Release) -> Self {
        Self::start_release_with(release, &["alpha", "beta"])
    }

    /// Starts a server of `release` with these jails, as `start_with` does.
    /// A release run from its source tree must answer `version` with its
    /// own version, or the test fails.
    pub fn start_release_with(release: Release, jails: &[&str]) -> Self {
        // What is missing fails here, before anything starts.
        let tree = release.tree();
        if tree.is_some() {
            upstream::python3();
        } else {
            require_program("fail2ban-server", "fail2ban");
        }
        let dir = tempfile::Builder::new()
            .prefix("f2b-")
            .tempdir()
            .expect("temp dir");
        let b = dir.path();
        for sub in [
            "conf/filter.d",
            "conf/action.d",
            "conf/jail.d",
            "run",
            "log",
        ] {
            fs::create_dir_all(b.join(sub)).expect("mkdir");
        }
        // Traversable by everyone, so a test can connect as another user
        // and meet the socket's own permissions.
        for d in [b.to_path_buf(), b.join("run")] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let socket = b.join("run/fail2ban.sock");
        write(
            b.join("conf/fail2ban.conf"),
            &format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {b}/run/fail2ban.log\n\
                 socket = {sock}\npidfile = {b}/run/fail2ban.pid\ndbfile = :memory:\n",
                b = b.display(),
                sock = socket.display()
            ),
        );
        write(
            b.join("conf/filter.d/t.conf"),
            "[Definition]\nfailregex = ^FAIL login from <HOST>$\ndatepattern = {NONE}\n",
        );
        write(
            b.join("conf/action.d/t.conf"),
            &format!(
                "[Definition]\nactionstart =\nactionstop =\nactioncheck =\n\
                 actionban = echo <ip> >> {b}/run/banned\nactionunban = true\n",
                b = b.display()
            ),
        );
        let mut jail_conf = String::from(
            "[DEFAULT]\nbackend = polling\nusedns = no\nignoreself = false\nmaxretry = 3\n\
             findtime = 1h\nbantime = 1h\n",
        );
        for j in jails {
            fs::File::create(b.join(format!("log/{j}.log"))).expect("log file");
            // `tail`: the filter starts at the end of the file as it is when
            // the jail adds it, and counts every line written after. Without
            // it, the filter's first read seeks to "now - findtime" and,
            // with `datepattern = {NONE}`, dates every line already there at
            // midnight: a line written after the jail was listed but before
            // that first read was silently skipped (outside 00:00 to 01:00).
            jail_conf.push_str(&format!(
                "\n[{j}]\nenabled = true\nfilter = t\naction = t\nlogpath = {}/log/{j}.log tail\n",
                b.display()
            ));
        }
        write(b.join("conf/jail.conf"), &jail_conf);

        let mut server = Self {
            dir,
            child: None,
            release,
            tree,
            socket,
            jails: jails.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// Starts the server process (again, after a kill) and waits until it
    /// answers with every jail, each following its log file. A release run
    /// from its source tree must answer `version` with its own version:
    /// anything else means it imported another fail2ban.
    pub fn spawn(&mut self) {
        self.spawn_only();
        self.wait_ready(Duration::from_secs(20));
        if let Some(expected) = self.release.expected_version() {
            let version = self.version();
            assert_eq!(
                version,
                expected,
                "the server run from {} says it is {version}, not {expected}: \
                 it imported another fail2ban (is PYTHONPATH honoured?)",
                self.tree.as_deref().unwrap_or(Path::new("?")).display()
            );
        }
    }

    /// What this server runs.
    pub fn release(&self) -> Release {
        self.release
    }

    /// The source tree this server runs from; `None` for the installed
    /// package.
    pub fn tree(&self) -> Option<&Path> {
        self.tree.as_deref()
    }

    /// The server's answer to `version`, asked outside the code under test.
    pub fn version(&self) -> String {
        match blocking_request(&self.socket, &["version"]) {
            Ok(codec::Reply::Ok(v)) => codec::parse_version(&v).expect("a version string"),
            other => panic!("version: {other:?}"),
        }
    }

    /// Starts the server process as `spawn` does and waits for it to exit,
    /// as a server with a broken jail does; returns its exit code.
    pub fn spawn_expecting_exit(&mut self) -> Option<i32> {
        self.spawn_only();
        let mut child = self.child.take().expect("spawned");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "fail2ban-server kept running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes `conf/jail.d/NAME.local`.
    pub fn write_jail_d(&self, name: &str, text: &str) {
        write(self.dir().join(format!("conf/jail.d/{name}.local")), text);
    }

    /// `fail2ban-client -c CONF -s SOCK` and the given words, as one string
    /// for the daemon's command settings. For a release run from its
    /// source tree: `env PYTHONPATH=TREE PYTHON TREE/bin/fail2ban-client ...`.
    pub fn client_command(&self, words: &str) -> String {
        let program = match &self.tree {
            None => require_program("fail2ban-client", "fail2ban")
                .display()
                .to_string(),
            Some(tree) => format!(
                "{} PYTHONPATH={} {} {}",
                require_program("env", "coreutils").display(),
                tree.display(),
                upstream::python3().display(),
                tree.join("bin/fail2ban-client").display()
            ),
        };
        format!(
            "{program} -c {} -s {} {words}",
            self.dir().join("conf").display(),
            self.socket.display()
        )
    }

    /// The words of `fail2ban-client` for this release, without `-c` and
    /// `-s` (the daemon's `fail2ban_client_command`).
    pub fn client_program(&self) -> String {
        let full = self.client_command("");
        full[..full.find(" -c ").expect("-c in the client command")].to_owned()
    }

    /// A reload command that waits until the returned file exists, then
    /// reloads this server: calls can land while a rollback or a trial's
    /// reload waits.
    pub fn reload_on_word(&self) -> (String, PathBuf) {
        let go = self.dir().join("go");
        let script = self.dir().join("reload.sh");
        write(
            script.clone(),
            &format!(
                "while [ ! -e {go} ]; do sleep 0.05; done\nexec {reload}\n",
                go = go.display(),
                reload = self.client_command("reload")
            ),
        );
        (format!("/bin/sh {}", script.display()), go)
    }

    /// A command running this release's `fail2ban-server` or
    /// `fail2ban-client`.
    fn program(&self, name: &str) -> Command {
        match &self.tree {
            None => Command::new(require_program(name, "fail2ban")),
            Some(tree) => upstream::tree_command(tree, name),
        }
    }

    fn spawn_only(&mut self) {
        assert!(self.child.is_none(), "already running");
        let b = self.dir.path();
        let child = self
            .program("fail2ban-server")
            .args(["-f", "-x", "-c"])
            .arg(b.join("conf"))
            .arg("-s")
            .arg(&self.socket)
            .arg("-p")
            .arg(b.join("run/fail2ban.pid"))
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(b.join("run/stderr")).expect("stderr file"))
            .spawn()
            .expect("spawn fail2ban-server");
        self.child = Some(child);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// Waits until the server answers `status` with every configured jail,
    /// each following its log file: a jail is listed as soon as it is
    /// added, before its log file is, and a line written then would be
    /// missed.
    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(names) = self.jail_names()
                && names.len() == self.jails.len()
                && self.jails.iter().all(|j| self.follows_its_log(j))
            {
                return;
            }
            if start.elapsed() > limit {
                let log =
                    fs::read_to_string(self.dir().join("run/fail2ban.log")).unwrap_or_default();
                let err = fs::read_to_string(self.dir().join("run/stderr")).unwrap_or_default();
                panic!(
                    "fail2ban-server did not come up within {limit:?}\nlog:\n{log}\nstderr:\n{err}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running jails, asked over a plain blocking socket.
    pub fn jail_names(&self) -> Result<Vec<String>, String> {
        match blocking_request(&self.socket, &["status"])? {
            codec::Reply::Ok(v) => codec::parse_jail_list(&v).map_err(|e| e.to_string()),
            codec::Reply::Failed(m) => Err(m),
        }
    }

    /// The files a jail's filter follows, from `status JAIL short`; `None`
    /// when its filter has no `File list` (the journal backend).
    pub fn jail_files(&self, jail: &str) -> Result<Option<Vec<String>>, String> {
        let value = match blocking_request(&self.socket, &["status", jail, "short"])? {
            codec::Reply::Ok(v) => v,
            codec::Reply::Failed(m) => return Err(m),
        };
        let filter = lookup(&value, "Filter").ok_or("no Filter section")?;
        let Some(files) = lookup(filter, "File list") else {
            return Ok(None);
        };
        match files {
            Value::List(items) | Value::Tuple(items) => Ok(Some(
                items
                    .iter()
                    .map(|f| match f {
                        Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect(),
            )),
            other => Err(format!("File list is {other:?}")),
        }
    }

    /// Whether a line appended to one of the jail's log files from now on
    /// will be counted: the jail follows a file (with `tail`, from the end
    /// it had when added).
    fn follows_its_log(&self, jail: &str) -> bool {
        match self.jail_files(jail) {
            Ok(Some(files)) => !files.is_empty(),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// fail2ban's own log (`run/fail2ban.log`), for a failure's message.
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.dir().join("run/fail2ban.log")).unwrap_or_default()
    }

    /// Appends a line to a jail's log file.
    pub fn log_line(&self, jail: &str, line: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.dir().join(format!("log/{jail}.log")))
            .expect("open jail log");
        // One write: the poller must never meet half a line.
        f.write_all(format!("{line}\n").as_bytes()).expect("append");
    }

    /// The counters this release's `fail2ban-client status JAIL` prints,
    /// read by label.
    pub fn client_counts(&self, jail: &str) -> JailStats {
        let text = self.client(&["status", jail]);
        let get = |label: &str| -> u32 {
            text.lines()
                .find_map(|l| l.split_once(label).map(|(_, v)| v.trim().parse().unwrap()))
                .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        };
        JailStats {
            name: jail.into(),
            currently_failed: get("Currently failed:"),
            total_failed: get("Total failed:"),
            currently_banned: get("Currently banned:"),
            total_banned: get("Total banned:"),
        }
    }

    /// Addresses the dummy action has banned so far.
    pub fn banned(&self) -> Vec<String> {
        fs::read_to_string(self.dir().join("run/banned"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Sends `signal` and waits until the server has exited.
    ///
    /// fail2ban's graceful shutdown has been seen, rarely and under load,
    /// to stall for over 10 s; its first SIGTERM restores the default
    /// handler, so a second one ends it. That is said on standard error,
    /// with the end of fail2ban's log.
    pub fn signal_and_wait(&mut self, signal: Signal) {
        self.signal_and_wait_timed(signal);
    }

    /// As `signal_and_wait`, and returns how long the server took from the
    /// signal to its exit (to within 5 ms).
    pub fn signal_and_wait_timed(&mut self, signal: Signal) -> Duration {
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(child.id() as i32);
        kill(pid, signal).expect("kill");
        let start = Instant::now();
        let mut repeated = false;
        loop {
            if child.try_wait().expect("wait").is_some() {
                return start.elapsed();
            }
            if !repeated && signal == Signal::SIGTERM && start.elapsed() > Duration::from_secs(10) {
                let log =
                    fs::read_to_string(self.dir().join("run/fail2ban.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!(
                    "fail2ban-server still running 10 s after SIGTERM; sending it again. Log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
                let _ = kill(pid, signal);
                repeated = true;
            }
            assert!(
                start.elapsed() < Duration::from_secs(25),
                "server ignores {signal}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `fail2ban-client -s SOCK ARGS...` of this server's release, its
    /// standard output.
    pub fn client(&self, args: &[&str]) -> String {
        let out = self
            .program("fail2ban-client")
            .arg("-c")
            .arg(self.dir().join("conf"))
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run fail2ban-client");
        assert!(out.status.success(), "fail2ban-client {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A server that `fail2ban-client start` forked is not our child:
        // its pid file names it.
        let pid = fs::read_to_string(self.dir().join("run/fail2ban.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The value paired with `key` in fail2ban's list of `(name, value)`
/// pairs, the shape of every `status` reply.
fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let (Value::List(items) | Value::Tuple(items)) = value else {
        return None;
    };
    items.iter().find_map(|item| match item {
        Value::Tuple(pair) | Value::List(pair) if pair.len() == 2 => {
            matches!(&pair[0], Value::String(k) if k == key).then_some(&pair[1])
        }
        _ => None,
    })
}

fn write(path: PathBuf, text: &str) {
    fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// One request over a blocking socket, outside the code under test.
pub fn blocking_request(socket: &Path, args: &[&str]) -> Result<codec::Reply, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(&codec::encode_request(args))
        .map_err(|e| e.to_string())?;
    let mut frames = codec::FrameBuffer::new(codec::DEFAULT_MAX_REPLY);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(frame) = frames.next_frame().map_err(|e| e.to_string())? {
            let _ = s.write_all(codec::CLOSE_COMMAND);
            return codec::decode_reply(&frame).map_err(|e| e.to_string());
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        frames.push(&chunk[..n]).map_err(|e| e.to_string())?;
    }
}

/// Every fail2ban version with recorded replies: the versions users run.
pub const FIXTURE_VERSIONS: [&str; 5] = ["0.11.2", "1.0.2", "1.1.0", "1.1.1", "1.1.2.dev1"];

/// A recorded reply from `fail2ban-VERSION/reply-NAME.bin` in
/// [`fixture_dir`].
pub fn fixture(version: &str, name: &str) -> Vec<u8> {
    let path = fixture_dir(version).join(format!("reply-{name}.bin"));
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where the replies recorded from fail2ban `version` are: the copy kept
/// in `tests/fixtures/` (1.0.2 and 1.1.1), else `shared/fixtures/` beside
/// the repository (every version; `../shared`, as in CI). A version in
/// neither fails the test, saying where it looked.
pub fn fixture_dir(version: &str) -> PathBuf {
    let name = format!("fail2ban-{version}");
    let vendored = vendored_fixture_dir(version);
    if vendored.is_dir() {
        return vendored;
    }
    let shared = shared_dir().join("fixtures").join(&name);
    assert!(
        shared.is_dir(),
        "no recorded replies of fail2ban {version}: neither {} nor {} exists \
         (CI puts a copy of shared/ beside the repository)",
        vendored.display(),
        shared.display()
    );
    shared
}

/// `tests/fixtures/fail2ban-VERSION`, whether it exists or not.
pub fn vendored_fixture_dir(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/fail2ban-{version}"))
}

/// Resident memory of `pid`, in KiB (0 when it is gone).
pub fn rss_kib(pid: Pid) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of `pid`.
pub fn fds(pid: Pid) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// `fail2ban-healthd probe --json` against `socket`, under an
/// address-space limit of `limit_bytes` (`prlimit --as`).
pub fn probe_binary_under_limit(socket: &Path, limit_bytes: u64) -> std::process::Output {
    Command::new(require_program("prlimit", "util-linux"))
        .arg(format!("--as={limit_bytes}"))
        .arg(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .args(["probe", "--json", "--timeout", "20", "--socket"])
        .arg(socket)
        .output()
        .expect("run the binary under prlimit")
}

/// Waits for `cond` to hold, polling, or panics with `what`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A jail's counters: failed now and in total, banned now and in total.
pub fn jail(name: &str, cf: u32, tf: u32, cb: u32, tb: u32) -> JailStats {
    JailStats {
        name: name.into(),
        currently_failed: cf,
        total_failed: tf,
        currently_banned: cb,
        total_banned: tb,
    }
}

/// The argv of `release`'s `fail2ban-client`, without options: the bare
/// name for the installed package (found on `PATH`, as the daemon's
/// default finds it), `env PYTHONPATH=TREE PYTHON TREE/bin/fail2ban-client`
/// for a release run from its source tree.
pub fn client_argv(release: Release) -> Vec<String> {
    match release.tree() {
        None => {
            require_program("fail2ban-client", "fail2ban");
            vec!["fail2ban-client".into()]
        }
        Some(tree) => vec![
            require_program("env", "coreutils").display().to_string(),
            format!("PYTHONPATH={}", tree.display()),
            upstream::python3().display().to_string(),
            tree.join("bin/fail2ban-client").display().to_string(),
        ],
    }
}

/// `release`'s own `filter.d`: the installed package's under
/// `/etc/fail2ban`, a source tree's under `config/`.
pub fn release_filter_dir(release: Release) -> PathBuf {
    match release.tree() {
        None => PathBuf::from("/etc/fail2ban/filter.d"),
        Some(tree) => tree.join("config/filter.d"),
    }
}
