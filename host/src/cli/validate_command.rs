//! `ferry validate`: everything short of connecting to a server.

use std::io::Write;
use std::path::PathBuf;

use super::{CliError, GlobalArgs, Verdict};
use crate::config::PipelineConfig;
use crate::wasm::TransformChain;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
}

pub(super) fn run(args: &ValidateArgs, global: &GlobalArgs, out: &mut dyn Write) -> Result<Verdict, CliError> {
    let config = PipelineConfig::load(&args.pipeline)?;
    let runtime = global.runtime()?;
    let transforms = config.transforms.iter().map(|transform| runtime.load(transform)).collect::<Result<_, _>>()?;
    TransformChain::new(transforms).start()?;
    let count = config.transforms.len();
    let plural = if count == 1 { "" } else { "s" };
    writeln!(out, "{}: pipeline {:?} is valid ({count} transform{plural})", args.pipeline.display(), config.name)?;
    Ok(Verdict::Success)
}
