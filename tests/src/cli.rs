//! `ferry` commands run in-process, through the same `Cli` the binary parses.

use clap::Parser;
use ferry::cli::{Cli, CliError, Context, Verdict};
use tokio_util::sync::CancellationToken;

/// Runs `ferry --cache-dir <the tests' cache> ARGS...`, returning the
/// verdict (or error) and what it printed.
pub fn ferry(args: &[&str]) -> (Result<Verdict, CliError>, String) {
    let cache = crate::compile_cache::dir().display().to_string();
    let cli = Cli::try_parse_from(["ferry", "--cache-dir", &cache].iter().chain(args)).expect("arguments parse");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let context = Context { runtime: runtime.handle().clone(), shutdown: CancellationToken::new() };
    let mut out = Vec::new();
    let verdict = cli.execute(&mut out, &context);
    (verdict, String::from_utf8(out).unwrap())
}
