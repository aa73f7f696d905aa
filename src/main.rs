//! The `fail2ban-healthd` binary: parses the command line, sets up logging
//! and runs the chosen subcommand on a single-threaded runtime.

use std::process::ExitCode;

use clap::Parser;
use fail2ban_healthd::cli::{self, Cli};

fn main() -> ExitCode {
    // clap exits with status 2 on bad usage, before anything else runs.
    let args = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAIL2BAN_HEALTHD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fail2ban-healthd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(args))
}
