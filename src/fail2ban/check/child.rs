//! One child process of the check: no shell, standard input closed or fed
//! from memory, output read to its end up to a bound, killed with its
//! process group if dropped.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::CheckError;

/// What is kept of a child's standard error.
const STDERR_LIMIT: usize = 1 << 20;

/// What a child left behind.
#[derive(Debug)]
pub(super) struct ChildRun {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stdout_cut: bool,
    pub(super) stderr: Vec<u8>,
}

/// Runs `argv` (no shell) in `cwd`, feeding it `input` on standard input
/// (closed when `None`), and reads its output up to the bounds, to the end.
/// Killed if dropped.
pub(super) async fn run_child(
    argv: Vec<OsString>,
    cwd: &Path,
    input: Option<Vec<u8>>,
    stdout_limit: usize,
) -> Result<ChildRun, CheckError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(CheckError::Settings("an empty command".into()));
    };
    let name = program.to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(|error| CheckError::Run {
            program: name.clone(),
            error,
        })?;
    // Dropped before `child`, which then kills and reaps the child itself.
    let mut group = GroupKill(child.id());
    let stdin = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(data)) = (stdin, input) {
            // A child that exits without reading is judged by its exit.
            let _ = pipe.write_all(&data).await;
        }
    };
    let ((), out, err) = tokio::join!(
        feed,
        read_bounded(child.stdout.take(), stdout_limit),
        read_bounded(child.stderr.take(), STDERR_LIMIT)
    );
    let run_error = |error| CheckError::Run {
        program: name.clone(),
        error,
    };
    let (stdout, stdout_cut) = out.map_err(run_error)?;
    let (stderr, _) = err.map_err(run_error)?;
    let status = child.wait().await.map_err(run_error)?;
    group.0 = None;
    Ok(ChildRun {
        status,
        stdout,
        stdout_cut,
        stderr,
    })
}

/// Kills the process group a child leads when a run is dropped before the
/// child was reaped, so that a client started through a wrapper leaves no
/// grandchild behind. Disarmed once the child is reaped: its id, the
/// group's, may then be reused.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(id) = self.0.and_then(|id| i32::try_from(id).ok()) {
            let _ = killpg(Pid::from_raw(id), Signal::SIGKILL);
        }
    }
}

/// Reads `pipe` to its end, keeping the first `limit` bytes; says whether
/// more came.
async fn read_bounded<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    limit: usize,
) -> io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut cut = false;
    let Some(mut pipe) = pipe else {
        return Ok((kept, cut));
    };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok((kept, cut));
        }
        let room = limit - kept.len();
        if n > room {
            cut = true;
        }
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}
