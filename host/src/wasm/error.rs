//! Everything that can go wrong with a transform, each naming the transform.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;

/// A cause reported by wasmtime, kept whole for `{:?}` and source chains.
pub type WasmCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a transform could not be loaded or could not process a batch.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("transform `{transform}`: cannot read {}", path.display())]
    Read {
        transform: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("transform `{transform}`: {} is not a WebAssembly component Ferry can compile", path.display())]
    Compile {
        transform: String,
        path: PathBuf,
        #[source]
        source: WasmCause,
    },
    #[error(
        "transform `{transform}` does not match Ferry's contract ferry:transform@0.1.0 (or needs imports Ferry does not grant)"
    )]
    Contract {
        transform: String,
        #[source]
        source: WasmCause,
    },
    #[error("transform `{transform}` cannot be given what its grants ask for")]
    Grant {
        transform: String,
        #[source]
        source: WasmCause,
    },
    #[error("transform `{transform}` rejected its configuration: {message}")]
    ConfigRejected { transform: String, message: String },
    #[error("transform `{transform}` timed out: {}", timed_out(*records, *deadline))]
    Timeout { transform: String, records: usize, deadline: Duration },
    #[error("transform `{transform}` ran out of memory: it needed more than its limit of {limit}")]
    OutOfMemory { transform: String, limit: ByteSize },
    #[error("transform `{transform}` trapped: {message}")]
    Trap {
        transform: String,
        message: String,
        #[source]
        source: WasmCause,
    },
    #[error("transform `{transform}` failed the batch: {message}")]
    BatchRejected { transform: String, message: String },
    #[error("transform `{transform}` broke the contract: it returned {returned} outcomes for {expected} records")]
    OutcomeCount { transform: String, expected: usize, returned: usize },
}

fn timed_out(records: usize, deadline: Duration) -> String {
    match records {
        0 => format!("starting it (its start code and configure) took longer than {deadline:?}"),
        1 => format!("one record ran longer than {deadline:?} (record_timeout)"),
        _ => format!("a call on {records} records ran longer than {deadline:?}"),
    }
}

impl TransformError {
    /// Whether the guest was stopped (a trap, a timeout, out of memory)
    /// rather than answering, as a rejected batch or a wrong count does.
    pub fn stopped_the_instance(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::OutOfMemory { .. } | Self::Trap { .. })
    }

    /// The name of the transform at fault.
    pub fn transform(&self) -> &str {
        match self {
            Self::Read { transform, .. }
            | Self::Compile { transform, .. }
            | Self::Contract { transform, .. }
            | Self::Grant { transform, .. }
            | Self::ConfigRejected { transform, .. }
            | Self::Timeout { transform, .. }
            | Self::OutOfMemory { transform, .. }
            | Self::Trap { transform, .. }
            | Self::BatchRejected { transform, .. }
            | Self::OutcomeCount { transform, .. } => transform,
        }
    }
}
