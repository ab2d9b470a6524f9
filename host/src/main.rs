//! The `ferry` binary: parses the command line, sets up logging, runs the
//! command and turns its verdict into an exit code.

use std::process::ExitCode;

use clap::Parser;
use ferry::cli::{Cli, Verdict};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let result = cli.execute(&mut std::io::stdout().lock());
    match result {
        Ok(Verdict::Success) => ExitCode::SUCCESS,
        Ok(Verdict::Failure) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::from(error));
            ExitCode::from(2)
        }
    }
}
