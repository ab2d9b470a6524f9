//! `ferry run`: runs pipelines until SIGINT/SIGTERM, with the admin
//! endpoint, progress lines and reloads.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{CliError, Context, GlobalArgs, Verdict};
use crate::admin::AdminServer;
use crate::runner::{self, FilesError, ReloadCause, RunOptions};
use crate::telemetry::Telemetry;

/// Where the admin endpoint listens unless told otherwise: loopback only,
/// so nothing is exposed beyond the host by default.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8642";

#[derive(Debug, clap::Args)]
#[command(after_help = "On SIGINT or SIGTERM, Ferry finishes the batches in flight, commits them and exits 0; \
                        a second signal exits at once (nothing is lost: uncommitted batches are replayed).\n\
                        On SIGHUP (and with --watch, when a file changes) every file is read again: changed \
                        pipelines are drained and swapped, new ones start, removed ones stop; an invalid new \
                        version keeps the old one running.")]
pub struct RunArgs {
    /// Pipeline files, or folders of them (every *.toml inside).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub pipelines: Vec<PathBuf>,
    /// Where the admin endpoint (/metrics, /health, /ready, /pipelines) listens, or `off`.
    #[arg(long, env = "FERRY_ADMIN", value_name = "ADDR|off", default_value = DEFAULT_ADMIN)]
    pub admin: AdminAddress,
    /// Reload when a pipeline file, a file in a pipeline folder, or a transform's component changes.
    #[arg(long)]
    pub watch: bool,
    /// How often each pipeline logs a progress line (e.g. `30s`); `0s` turns them off.
    #[arg(long, env = "FERRY_PROGRESS_INTERVAL", value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,
}

/// `--admin`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAddress {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for AdminAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" | "none" | "" => Ok(Self::Off),
            address => address
                .parse()
                .map(Self::At)
                .map_err(|_| format!("{address:?} is not host:port (an IP address and a port), nor `off`")),
        }
    }
}

pub(super) fn run(
    args: &RunArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    context: &Context,
) -> Result<Verdict, CliError> {
    // Every file is valid and every name unique before anything starts.
    let files = runner::load_all(&args.pipelines)?;
    if files.is_empty() && !args.watch {
        // (Watching, an empty folder waits for its first file.)
        return Err(FilesError::Empty.into());
    }
    let runtime = Arc::new(global.runtime()?);
    let telemetry = Telemetry::new();
    let options = RunOptions {
        paths: args.pipelines.clone(),
        watch: args.watch,
        progress_every: Some(args.progress_interval).filter(|every| !every.is_zero()),
    };
    let report = context.runtime.block_on(async {
        let admin = match args.admin {
            AdminAddress::At(address) => Some(AdminServer::start(address, telemetry.clone()).await?),
            AdminAddress::Off => None,
        };
        let (reload_sender, reloads) = mpsc::channel(4);
        let hangups = tokio::spawn(forward_hangups(reload_sender));
        let report = runner::run(files, options, runtime, telemetry, context.shutdown.clone(), reloads).await;
        hangups.abort();
        if let Some(admin) = admin {
            admin.stop().await;
        }
        Ok::<_, CliError>(report)
    })?;
    for (name, outcome) in &report.pipelines {
        match outcome {
            None => writeln!(out, "pipeline {name:?} stopped")?,
            Some(error) => writeln!(out, "pipeline {name:?} failed: {error}")?,
        }
    }
    Ok(if report.all_stopped_cleanly() { Verdict::Success } else { Verdict::Failure })
}

/// Turns each SIGHUP into a reload request.
async fn forward_hangups(reloads: mpsc::Sender<ReloadCause>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with --watch instead");
        return;
    };
    while hangups.recv().await.is_some() {
        if reloads.send(ReloadCause::Signal).await.is_err() {
            return;
        }
    }
}
