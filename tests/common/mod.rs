//! Shared test support: a real private `fail2ban-server` and an in-process
//! fake for what a real server will not do.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

pub mod bus;
pub mod fake;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fail2ban_healthd::fail2ban::codec;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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
    pub socket: PathBuf,
    pub jails: Vec<String>,
}

impl Fail2ban {
    /// Starts a server with the jails `alpha` and `beta`.
    pub fn start() -> Self {
        Self::start_with(&["alpha", "beta"])
    }

    /// Starts a server with these jails (polling backend, a dummy action of
    /// our own that appends banned addresses to `run/banned`), and waits
    /// until it answers with all of them running.
    pub fn start_with(jails: &[&str]) -> Self {
        require_program("fail2ban-server", "fail2ban");
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
            jail_conf.push_str(&format!(
                "\n[{j}]\nenabled = true\nfilter = t\naction = t\nlogpath = {}/log/{j}.log\n",
                b.display()
            ));
        }
        write(b.join("conf/jail.conf"), &jail_conf);

        let mut server = Self {
            dir,
            child: None,
            socket,
            jails: jails.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// Starts the server process (again, after a kill) and waits until it
    /// answers with every jail.
    pub fn spawn(&mut self) {
        self.spawn_only();
        self.wait_ready(Duration::from_secs(20));
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
    /// for the daemon's command settings.
    pub fn client_command(&self, words: &str) -> String {
        format!(
            "{} -c {} -s {} {words}",
            require_program("fail2ban-client", "fail2ban").display(),
            self.dir().join("conf").display(),
            self.socket.display()
        )
    }

    fn spawn_only(&mut self) {
        assert!(self.child.is_none(), "already running");
        let b = self.dir.path();
        let child = Command::new(require_program("fail2ban-server", "fail2ban"))
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

    /// Waits until the server answers `status` with every configured jail.
    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(names) = self.jail_names() {
                if names.len() == self.jails.len() {
                    return;
                }
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

    /// Appends a line to a jail's log file.
    pub fn log_line(&self, jail: &str, line: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.dir().join(format!("log/{jail}.log")))
            .expect("open jail log");
        writeln!(f, "{line}").expect("append");
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
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(child.id() as i32);
        kill(pid, signal).expect("kill");
        let start = Instant::now();
        let mut repeated = false;
        loop {
            if child.try_wait().expect("wait").is_some() {
                return;
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
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `fail2ban-client -s SOCK ARGS...`, its standard output.
    pub fn client(&self, args: &[&str]) -> String {
        let client = require_program("fail2ban-client", "fail2ban");
        let out = Command::new(client)
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

/// A recorded reply from `tests/fixtures/fail2ban-VERSION/reply-NAME.bin`.
pub fn fixture(version: &str, name: &str) -> Vec<u8> {
    let path = fixture_dir(version).join(format!("reply-{name}.bin"));
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture_dir(version: &str) -> PathBuf {
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
