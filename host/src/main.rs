//! The `ferry` binary: parses the command line, sets up logging and signal
//! handling, runs the command and turns its verdict into an exit code.

use std::process::ExitCode;

use clap::Parser;
use ferry::cli::{Cli, Context, Verdict};
use tokio_util::sync::CancellationToken;

// Ferry allocates and frees small buffers for every record; mimalloc does
// that with a fraction of glibc malloc's CPU (measured with the pipeline bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.global.init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    runtime.spawn(cancel_on_signal(shutdown.clone()));
    let context = Context { runtime: runtime.handle().clone(), shutdown };
    let result = cli.execute(&mut std::io::stdout().lock(), &context);
    match result {
        Ok(Verdict::Success) => ExitCode::SUCCESS,
        // A record failed (`ferry test`), or a pipeline stopped on an error
        // (`ferry run`, which says which).
        Ok(Verdict::Failure) => ExitCode::from(1),
        Err(error) => {
            // The same one line as logs and status, credentials taken out.
            eprintln!("error: {}", ferry::error::error_chain(&error));
            ExitCode::from(2)
        }
    }
}

/// The first SIGINT or SIGTERM asks for a graceful stop; a second one exits
/// at once (nothing is lost: uncommitted batches are replayed next start).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        tracing::warn!("cannot listen for SIGTERM; only Ctrl-C stops Ferry gracefully");
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
        return;
    };
    for signals in 1.. {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        if signals > 1 {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
        tracing::info!("shutting down: finishing the batches in flight (signal again to exit at once)");
        shutdown.cancel();
    }
}
