//! The `fail2ban-healthd` binary: parses the command line, sets up logging
//! and runs the chosen subcommand on a single-threaded runtime.

use std::process::ExitCode;

use clap::Parser;
use fail2ban_healthd::cli::{self, Cli, Command};
use fail2ban_healthd::client;
use fail2ban_healthd::config::LogTarget;

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("fail2ban-healthd: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Runs a client subcommand on a fresh runtime.
fn client<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<u8, client::Failure>>,
{
    match runtime() {
        Some(rt) => client::exit_code(rt.block_on(f())),
        None => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    // clap exits with status 2 on bad usage, before anything else runs.
    let args = Cli::parse();
    match args.command {
        Command::Probe(probe) => {
            if fail2ban_healthd::logging::init(LogTarget::Stderr, tracing::Level::WARN).is_err() {
                return ExitCode::FAILURE;
            }
            match runtime() {
                Some(rt) => rt.block_on(cli::probe(probe)),
                None => ExitCode::FAILURE,
            }
        }
        Command::Status { json, bus } => client(|| async move { client::status(&bus, json).await }),
        Command::Watch { json, bus } => client(|| async move { client::watch(&bus, json).await }),
        Command::Activate { jail, bus } => {
            client(|| async move { client::activate(&bus, &jail).await })
        }
        Command::Dismiss { bus } => client(|| async move { client::dismiss(&bus).await }),
        Command::Rollback { json, bus } => {
            client(|| async move { client::rollback(&bus, json).await })
        }
        Command::Check { jail, json, bus } => {
            client(|| async move { client::trial::check(&bus, &jail, json).await })
        }
        Command::Try {
            jail,
            timeout,
            json,
            bus,
        } => client(|| async move { client::trial::run(&bus, &jail, timeout, json).await }),
        Command::Confirm { bus } => client(|| async move { client::trial::confirm(&bus).await }),
        Command::Abort { bus } => client(|| async move { client::trial::abort(&bus).await }),
        Command::Run(run) => {
            // A bad setting stops here, before the bus is touched.
            let config = match run.load() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("fail2ban-healthd: configuration error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = fail2ban_healthd::logging::init(config.log, config.log_level) {
                eprintln!("fail2ban-healthd: {e}");
                return ExitCode::from(2);
            }
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            match rt.block_on(fail2ban_healthd::daemon::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "daemon_failed");
                    eprintln!("fail2ban-healthd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
