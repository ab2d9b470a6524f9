//! The `ferry` command line: argument definitions and the commands behind
//! them. `main.rs` only adds logging, signals and exit codes.

// Public for the fuzz targets only.
#[doc(hidden)]
pub mod golden;
mod logging;
mod new_command;
mod report;
mod run_command;
mod test_command;
mod validate_command;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use logging::LogFormat;
pub use new_command::{Lang, NewArgs};
pub use run_command::{AdminAddress, DEFAULT_ADMIN, RunArgs};
pub use test_command::TestArgs;
pub use validate_command::ValidateArgs;

use crate::admin::AdminError;
use crate::config::ConfigError;
use crate::pipeline::PipelineError;
use crate::runner::FilesError;
use crate::wasm::{CompileCache, EngineError, TransformError, WasmRuntime};

/// Moves data between Apache Iggy and MongoDB through WebAssembly transforms.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Where compiled transforms are cached [default: $XDG_CACHE_HOME/ferry or ~/.cache/ferry].
    #[arg(long, global = true, env = "FERRY_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile transforms every time instead of using the cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// How log lines are written to stderr (`FERRY_LOG` sets the level).
    #[arg(long, global = true, env = "FERRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pipelines until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Run transforms over a JSON-lines file, without any server.
    Test(TestArgs),
    /// Check pipeline files, load their transforms and run their config checks.
    Validate(ValidateArgs),
    /// Create a transform project (Rust, Python or JavaScript) that builds and passes `ferry test` as it is.
    New(NewArgs),
}

/// How a command that ran to the end went; `main` turns it into the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything went as expected (exit code 0).
    Success,
    /// Records failed, or output differed from `--expect` (exit code 1).
    Failure,
}

/// Why a command could not run to the end (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} line {line} is not valid JSON", path.display())]
    Golden {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the report")]
    Output(#[from] std::io::Error),
}

/// What the binary provides to commands: an async runtime for pipelines,
/// and the signal that asks them to stop.
pub struct Context {
    pub runtime: tokio::runtime::Handle,
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Cli {
    /// Runs the chosen command, writing its report to `out`. Call it from a
    /// thread that is not one of `context.runtime`'s workers.
    pub fn execute(self, out: &mut dyn Write, context: &Context) -> Result<Verdict, CliError> {
        match self.command {
            Command::Run(args) => run_command::run(&args, &self.global, out, context),
            Command::Test(args) => test_command::run(&args, &self.global, out),
            Command::Validate(args) => validate_command::run(&args, &self.global, out),
            Command::New(args) => new_command::run(&args, out),
        }
    }
}

impl GlobalArgs {
    /// Installs the logger these options ask for.
    pub fn init_logging(&self) {
        logging::init(self.log_format);
    }

    /// The WebAssembly runtime these options ask for.
    pub fn runtime(&self) -> Result<WasmRuntime, EngineError> {
        let cache = match self.no_cache {
            true => None,
            false => self.cache_dir.clone().or_else(CompileCache::default_dir).map(CompileCache::new),
        };
        WasmRuntime::new(cache)
    }
}
