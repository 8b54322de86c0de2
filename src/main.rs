//! `autosend <command>`: parse the command line, load the configuration, run.
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

use std::process::ExitCode;

use autosend::cli::{self, Cli};
use autosend::config::Settings;
use clap::Parser;

fn main() -> ExitCode {
    // clap exits with code 2 on usage errors by itself.
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match autosend::telemetry::init(&settings) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(1);
        }
    };
    autosend::panics::install_panic_hook();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<cli::UsageError>() => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "command failed");
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
