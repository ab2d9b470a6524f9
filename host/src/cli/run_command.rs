//! `ferry run`: runs a pipeline until SIGINT/SIGTERM.

use std::io::Write;
use std::path::PathBuf;

use super::{CliError, Context, GlobalArgs, Verdict};
use crate::config::PipelineConfig;
use crate::pipeline;

#[derive(Debug, clap::Args)]
#[command(after_help = "On SIGINT or SIGTERM, Ferry finishes the batches in flight, commits them and exits 0; \
                        a second signal exits at once (nothing is lost: uncommitted batches are replayed).")]
pub struct RunArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
}

pub(super) fn run(
    args: &RunArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    context: &Context,
) -> Result<Verdict, CliError> {
    let config = PipelineConfig::load(&args.pipeline)?;
    let name = config.name.clone();
    let runtime = global.runtime()?;
    let counts = context.runtime.block_on(pipeline::run(config, runtime, context.shutdown.clone()))?;
    writeln!(
        out,
        "pipeline {name:?} stopped: {} records in {} batches, {} outputs written, {} dropped, {} dead-lettered",
        counts.records, counts.batches, counts.outputs, counts.dropped, counts.dead_lettered
    )?;
    Ok(Verdict::Success)
}
