//! An in-process fake fail2ban for what a real server will not do: garbage,
//! hangs, drips, oversize replies, closes in mid-reply.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fail2ban_healthd::fail2ban::codec::{self, FrameBuffer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// What the fake does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send these bytes (a whole framed reply, or anything else).
    Send(Vec<u8>),
    /// Never answer, keep the connection open.
    Hang,
    /// Send these bytes one at a time, `interval` apart.
    Drip(Vec<u8>, Duration),
    /// Send these bytes, then close the connection.
    SendAndClose(Vec<u8>),
    /// Send `chunk` over and over, never a terminator, until the peer leaves.
    Flood(Vec<u8>),
    /// Wait this long, then send these bytes.
    SendAfter(Duration, Vec<u8>),
}

type Handler = dyn Fn(&[String]) -> Action + Send + Sync;

/// A fake server listening on a Unix socket in a temporary directory.
pub struct FakeServer {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// Every request received, in order, across connections.
    pub requests: Arc<Mutex<Vec<Vec<String>>>>,
    /// Bytes sent by `Flood` actions so far.
    pub flooded: Arc<Mutex<usize>>,
    /// Connections accepted so far.
    pub connections: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&[String]) -> Action + Send + Sync + 'static) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fake-f2b-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("fail2ban.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let flooded = Arc::new(Mutex::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let connections = Arc::new(Mutex::new(0));
        let (reqs, fl, conns) = (requests.clone(), flooded.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *conns.lock().expect("lock") += 1;
                tokio::spawn(serve(stream, handler.clone(), reqs.clone(), fl.clone()));
            }
        });
        Self {
            _dir: dir,
            socket,
            requests,
            flooded,
            connections,
            task,
        }
    }

    /// A fake that replays recorded replies of fail2ban `version`: a request
    /// `["status", "alpha", "short"]` gets `reply-status-alpha-short.bin`.
    pub fn replay(version: &'static str) -> Self {
        Self::start(move |req| {
            let dir = super::fixture_dir(version);
            let name = req.join("-");
            let mut path = dir.join(format!("reply-{name}.bin"));
            if !path.exists() {
                // Not every short status was recorded; the long one carries
                // the same counters.
                path = dir.join(format!("reply-{}.bin", name.trim_end_matches("-short")));
            }
            match std::fs::read(&path) {
                Ok(bytes) => Action::Send(bytes),
                Err(_) => Action::Send(super::fixture(version, "invalid-command")),
            }
        })
    }

    pub fn requests(&self) -> Vec<Vec<String>> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: UnixStream,
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<Vec<String>>>>,
    flooded: Arc<Mutex<usize>>,
) {
    let mut frames = FrameBuffer::new(1 << 20);
    let mut chunk = vec![0u8; 4096];
    loop {
        let frame = loop {
            match frames.next_frame() {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(_) => return,
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if frames.push(&chunk[..n]).is_err() {
                        return;
                    }
                }
            }
        };
        if frame == b"<F2B_CLOSE_COMMAND>" {
            return;
        }
        let req: Vec<String> =
            serde_pickle::from_slice(&frame, serde_pickle::DeOptions::new()).unwrap_or_default();
        requests.lock().expect("lock").push(req.clone());
        match handler(&req) {
            Action::Send(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Action::Hang => {
                // Hold the connection until the peer goes away.
                let _ = stream.read(&mut chunk).await;
                return;
            }
            Action::Drip(bytes, interval) => {
                for b in bytes {
                    if stream.write_all(&[b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(interval).await;
                }
            }
            Action::SendAfter(delay, bytes) => {
                tokio::time::sleep(delay).await;
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Action::SendAndClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return;
            }
            Action::Flood(block) => loop {
                if stream.write_all(&block).await.is_err() {
                    return;
                }
                *flooded.lock().expect("lock") += block.len();
            },
        }
    }
}

/// A framed success reply carrying `value`, pickled like fail2ban does.
pub fn ok_reply(value: serde_pickle::Value) -> Vec<u8> {
    let pair = serde_pickle::Value::Tuple(vec![serde_pickle::Value::I64(0), value]);
    let mut out =
        serde_pickle::value_to_vec(&pair, serde_pickle::SerOptions::new()).expect("pickle");
    out.extend_from_slice(codec::END_COMMAND);
    out
}

/// A framed reply `(code, value)` around a hand-made pickle of `value`
/// (opcodes only, no PROTO or STOP).
pub fn raw_reply(code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80, 4, b'K', code];
    out.extend_from_slice(value);
    out.extend_from_slice(b"\x86.");
    out.extend_from_slice(codec::END_COMMAND);
    out
}

/// The pickle opcodes of a string (`BINUNICODE`).
pub fn pickled_str(s: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend((s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

/// What one run of the binary's `probe` did.
#[derive(Debug)]
pub struct ProbeRun {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The binary's peak resident memory (its `ru_maxrss`), in KiB.
    pub peak_rss_kib: u64,
}

impl ProbeRun {
    /// The `--json` report.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

/// `fail2ban-healthd probe --unit "" --socket SOCKET ARGS...`, run by a
/// small python3 parent that reports the child's own peak RSS; `prefix`
/// (for instance `prlimit --nofile=8`) goes before the binary.
pub fn run_probe(socket: &std::path::Path, args: &[&str], prefix: &[&str]) -> ProbeRun {
    const PARENT: &str = "import resource, subprocess, sys\n\
        p = subprocess.run(sys.argv[1:], capture_output=True)\n\
        sys.stdout.buffer.write(p.stdout)\n\
        sys.stderr.buffer.write(p.stderr)\n\
        sys.stderr.write('\\nMAXRSS %d %d\\n' % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode))\n";
    let python = super::require_program("python3", "python3");
    let start = std::time::Instant::now();
    let out = std::process::Command::new(python)
        .args(["-c", PARENT])
        .args(prefix)
        .arg(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .args(["probe", "--unit", "", "--socket"])
        .arg(socket)
        .args(args)
        .output()
        .expect("run python3");
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (rest, tail) = stderr
        .rsplit_once("\nMAXRSS ")
        .unwrap_or_else(|| panic!("the parent failed: {stderr}"));
    let mut fields = tail
        .split_whitespace()
        .map(|f| f.parse::<i64>().expect("number"));
    let peak_rss_kib = fields.next().expect("rss") as u64;
    let code = fields.next().expect("status");
    ProbeRun {
        status: (code >= 0).then_some(code as i32),
        stdout: String::from_utf8(out.stdout).expect("the binary prints UTF-8"),
        stderr: rest.to_owned(),
        elapsed,
        peak_rss_kib,
    }
}

/// Panics unless `text` is free of control characters (newlines ending
/// lines excepted) and line or paragraph separators.
pub fn assert_no_control(text: &str) {
    for line in text.lines() {
        assert!(
            fail2ban_healthd::text::printable(line),
            "a control character in the output: {line:?}"
        );
    }
    assert!(!text.contains('\r'), "{text:?}");
}
