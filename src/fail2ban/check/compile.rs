//! The compile of a jail's regexes by fail2ban's own modules: `helper.py`
//! run by the interpreter that runs fail2ban-client, with its
//! `PYTHONPATH`, so it imports the fail2ban the client runs. It also asks
//! fail2ban's `JailsReader` whether the jail is defined. One process for
//! all the regexes.

use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::CheckError;
use super::child::run_child;
use super::copy::PrivateCopy;
use super::report::{MESSAGE_BYTES, last_line};
use crate::text::clean;

/// Reads a JSON request on standard input and prints a JSON answer. The
/// working directory is dropped from `sys.path` first: only the client's
/// modules may be imported.
const HELPER: &str = include_str!("helper.py");

const HELPER_OUTPUT_LIMIT: usize = 4 << 20;

/// The helper's answer: the fail2ban version that compiled, whether the
/// jail is defined (`None` when the configuration could not be read),
/// whether the dump starts it, what compiled and what was refused.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Compiled {
    pub(super) fatal: Option<String>,
    pub(super) version: Option<String>,
    pub(super) defined: Option<bool>,
    pub(super) read_error: Option<String>,
    pub(super) in_dump: bool,
    pub(super) failregex: u32,
    pub(super) ignoreregex: u32,
    pub(super) prefregex: u32,
    pub(super) errors: Vec<RegexRefused>,
    pub(super) config_errors: Vec<String>,
}

/// One value fail2ban's filter refused.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RegexRefused {
    pub(super) option: String,
    pub(super) value: String,
    pub(super) error: String,
}

/// Runs the helper with the client's interpreter.
pub(super) async fn compile(
    client: &[String],
    copy: &PrivateCopy,
    jail: &str,
    dump: &str,
) -> Result<Compiled, CheckError> {
    let client_owned = client.to_vec();
    let python = tokio::task::spawn_blocking(move || python_argv(&client_owned))
        .await
        .map_err(|e| CheckError::Helper(e.to_string()))??;
    let mut argv: Vec<OsString> = python.into_iter().map(OsString::from).collect();
    argv.push("-c".into());
    argv.push(HELPER.into());
    let request = serde_json::json!({
        "jail": jail,
        "config_dir": copy.conf.to_string_lossy(),
        "dump": dump,
    });
    let run = run_child(
        argv,
        &copy.work,
        Some(request.to_string().into_bytes()),
        HELPER_OUTPUT_LIMIT,
    )
    .await?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() || run.stdout_cut {
        let words = last_line(&stderr).unwrap_or_else(|| "no output".into());
        return Err(CheckError::Helper(format!("{}: {words}", run.status)));
    }
    let answer: Compiled = serde_json::from_slice(&run.stdout)
        .map_err(|e| CheckError::Helper(format!("unreadable answer: {e}")))?;
    if let Some(fatal) = &answer.fatal {
        return Err(CheckError::Helper(clean(fatal, MESSAGE_BYTES).into_owned()));
    }
    Ok(answer)
}

/// The interpreter, with its leading words, that runs the client: the
/// command's own (`env PYTHONPATH=.. /usr/bin/python3 SCRIPT`), or the
/// `#!` line of the client program (`/usr/bin/fail2ban-client` starts
/// with `#!/usr/bin/python3`), after any `env NAME=VALUE` words.
fn python_argv(client: &[String]) -> Result<Vec<String>, CheckError> {
    let base = |s: &str| {
        Path::new(s)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    let mut i = 0;
    if client.first().and_then(|s| base(s)).as_deref() == Some("env") {
        i = 1;
        while client
            .get(i)
            .is_some_and(|w| w.contains('=') || w.starts_with('-'))
        {
            i += 1;
        }
    }
    let Some(program) = client.get(i) else {
        return Err(CheckError::Interpreter {
            program: client.join(" "),
            reason: "the command names no program".into(),
        });
    };
    if base(program).is_some_and(|b| b.starts_with("python")) {
        let mut end = i + 1;
        while client.get(end).is_some_and(|w| w.starts_with('-')) {
            end += 1;
        }
        return Ok(client[..end].to_vec());
    }
    let fail = |reason: String| CheckError::Interpreter {
        program: program.clone(),
        reason,
    };
    let path = resolve_program(program).ok_or_else(|| fail("not found on PATH".into()))?;
    let mut head = Vec::with_capacity(512);
    fs::File::open(&path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let words = shebang(&head).ok_or_else(|| {
        fail(format!(
            "{} does not start with a #! line naming Python",
            path.display()
        ))
    })?;
    let mut argv = client[..i].to_vec();
    argv.extend(words);
    Ok(argv)
}

/// `program` as `execvp` would find it.
fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The words of a `#!` line.
fn shebang(head: &[u8]) -> Option<Vec<String>> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let words: Vec<String> = std::str::from_utf8(line)
        .ok()?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (!words.is_empty()).then_some(words)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(dir: &Path, name: &str, head: &[u8]) -> String {
        let path = dir.join(name);
        fs::write(&path, head).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_interpreter_is_the_commands_own_or_the_clients_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let debian = script(
            dir.path(),
            "f2b-client",
            b"#!/usr/bin/python3\nimport sys\n",
        );
        let upstream = script(dir.path(), "f2b-up", b"#!/usr/bin/env python3\n");
        let elf = script(dir.path(), "elf", b"\x7fELF\x02\x01");
        assert_eq!(
            python_argv(&[debian.clone(), "-c".into(), "/x".into()]).unwrap(),
            ["/usr/bin/python3"]
        );
        assert_eq!(
            python_argv(&words(&["env", "PYTHONPATH=/src", &upstream])).unwrap(),
            ["env", "PYTHONPATH=/src", "/usr/bin/env", "python3"]
        );
        assert_eq!(
            python_argv(&words(&[
                "env",
                "PYTHONPATH=/src",
                "/usr/bin/python3.11",
                "-s",
                "/src/bin/fail2ban-client"
            ]))
            .unwrap(),
            ["env", "PYTHONPATH=/src", "/usr/bin/python3.11", "-s"]
        );
        let e = python_argv(std::slice::from_ref(&elf)).unwrap_err();
        assert!(matches!(e, CheckError::Interpreter { .. }), "{e}");
        assert!(e.to_string().contains(&elf), "{e}");
        let e = python_argv(&words(&["no-such-client-program-here"])).unwrap_err();
        assert!(e.to_string().contains("not found on PATH"), "{e}");
        assert!(python_argv(&words(&["env", "A=b"])).is_err());
        assert_eq!(
            shebang(b"#! /usr/bin/python3 -s\n"),
            Some(words(&["/usr/bin/python3", "-s"]))
        );
        assert_eq!(shebang(b"#!\n"), None);
    }
}
