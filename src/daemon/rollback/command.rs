//! The reload and start commands, run without a shell under a deadline;
//! a command still running when its future is dropped is killed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;

/// Runs `argv` (no shell) and waits for it until `deadline`.
pub(in crate::daemon) async fn run_command(
    argv: &[String],
    deadline: Instant,
) -> Result<(), String> {
    run_command_checked(argv, deadline)
        .await
        .and_then(|ran| ran)
}

/// Runs `argv` (no shell) and waits for it until `deadline`: `Err` when it
/// could not be started, `Ok(Err)` when it ran and failed.
pub(in crate::daemon) async fn run_command_checked(
    argv: &[String],
    deadline: Instant,
) -> Result<Result<(), String>, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // A server the command starts may keep the pipe open: read a bounded
    // amount in the background, and stop reading once the command ends.
    let mut stderr = child.stderr.take();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(16 * 1024).read_to_end(&mut out).await;
        }
        out
    });
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Ok(Err(format!("{program}: {e}"))),
        Err(_) => {
            let _ = child.kill().await;
            return Ok(Err(format!("{} did not finish in time", argv.join(" "))));
        }
    };
    let abort = reader.abort_handle();
    let output = tokio::time::timeout(Duration::from_millis(200), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    // A server that kept the pipe open must not keep a task reading it.
    abort.abort();
    if status.success() {
        return Ok(Ok(()));
    }
    let text = String::from_utf8_lossy(&output);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    Ok(Err(format!(
        "{} ended with {status}{}{last}",
        argv.join(" "),
        if last.is_empty() { "" } else { ": " }
    )))
}
