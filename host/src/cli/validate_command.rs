//! `ferry validate`: everything short of connecting to a server, for the
//! same files and folders `ferry run` takes.

use std::io::Write;
use std::path::PathBuf;

use super::{CliError, GlobalArgs, Verdict};
use crate::runner::{self, FilesError};
use crate::wasm::TransformChain;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Pipeline files, or folders of them (every *.toml inside).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub pipelines: Vec<PathBuf>,
}

pub(super) fn run(args: &ValidateArgs, global: &GlobalArgs, out: &mut dyn Write) -> Result<Verdict, CliError> {
    let files = runner::load_all(&args.pipelines)?;
    if files.is_empty() {
        return Err(FilesError::Empty.into());
    }
    let runtime = global.runtime()?;
    for file in &files {
        let config = &file.config;
        let transforms = config.transforms.iter().map(|transform| runtime.load(transform)).collect::<Result<_, _>>()?;
        let mut chain = TransformChain::new(transforms);
        chain.start()?;
        let count = config.transforms.len();
        let plural = if count == 1 { "" } else { "s" };
        let versions = chain.lineage().map(|lineage| format!(": {}", lineage.replace(',', ", "))).unwrap_or_default();
        writeln!(
            out,
            "{}: pipeline {:?} is valid ({count} transform{plural}{versions})",
            file.path.display(),
            config.name
        )?;
    }
    Ok(Verdict::Success)
}
