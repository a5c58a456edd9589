//! devbox: makes a developer's laptop match production.
//!
//! `main` parses the arguments, builds the runtime, runs one command and turns its result into an
//! exit code. Errors are printed here, with their causes and a hint, and nowhere else.

mod aws;
mod cleanup;
mod cli;
mod clock;
mod config;
mod deps;
mod disk;
mod docker_config;
mod doctor;
mod engine;
mod env;
mod error;
mod fleet;
mod http;
mod images;
mod init;
mod lock;
mod network;
mod paths;
mod progress;
mod registry;
mod schedule;
mod signature;
mod state;
mod templates;
mod ui;
mod update;

use std::process::ExitCode;

use clap::Parser;

use crate::error::ExitStatus;

// `main` prints the one error that stops everything before `ui` exists (no runtime).
#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let env = env::Environment::from_process();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitStatus::Failure.into();
        }
    };
    match runtime.block_on(cli::run(cli, env)) {
        Ok(status) => status.into(),
        Err(err) => {
            ui::print_error(&err, engine::hint_of(&err));
            error::exit_status_of(&err).into()
        }
    }
}
