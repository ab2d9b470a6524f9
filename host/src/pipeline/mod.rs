//! The pipeline: poll → transform → write → commit, with the stages
//! overlapped and a bounded number of batches in flight.
//!
//! Three stages run at once: the driver polls the source, numbers each
//! batch and commits; the transform stage runs `transform_instances`
//! instances of the WebAssembly chain, each on its own thread; the writer
//! puts their results back in poll order (`resequence`), writes (several
//! independent batches at once where the sink allows), dead-letters and
//! acknowledges. A batch's position is committed only after the writer
//! acknowledged it and every batch before it, so a crash at any moment
//! replays from the last commit and idempotent writes turn the replay into
//! exactly-once results.
//!
//! `launch` loads a pipeline's transforms and builds its ends; `driver`
//! runs the stages. Every stage reports into the pipeline's telemetry
//! handle (see `crate::telemetry`).

mod backoff;
mod dispatch;
mod driver;
mod health;
mod launch;
mod leadership;
mod resequence;
mod stage_panic;
mod transform_stage;
mod unstored;
mod writer;

pub use backoff::{Backoff, Interrupted};
pub use driver::drive;
pub use health::Broken;
pub use launch::{ChangeEnds, LoadedPipeline, run};
pub use stage_panic::StagePanic;
pub use transform_stage::run_isolating;
pub use writer::Writer;

use crate::error::ServiceError;
use crate::record::RecordResult;
use crate::wasm::{EngineError, TransformError};

/// Why a pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(
        "the record at {position} cannot be processed ({stage}): {reason}. Nothing after it was committed; \
         fix the cause, or configure [dead_letter] so such records are set aside"
    )]
    Undeliverable { position: String, stage: String, reason: String },
    #[error("a pipeline stage stopped unexpectedly")]
    StageLost,
    /// `on_broken_transform = "stop"`, and the transform stopped on most
    /// records.
    #[error(
        "{broken}; stopped, as on_broken_transform = \"stop\" says. Nothing after the last committed batch was \
         committed: fix the transform and start again"
    )]
    TransformBroken { broken: health::Broken },
    /// A bug in Ferry: a stage panicked. Nothing at or after the batch it
    /// was working on was committed.
    #[error(
        "the {stage} stage {panic}. Nothing after the last committed batch was committed; this is a bug in Ferry, \
         please report it"
    )]
    StagePanicked { stage: &'static str, panic: StagePanic },
    /// Shutdown arrived while a batch was still being retried.
    #[error("interrupted by shutdown")]
    Interrupted,
}

/// What a pipeline did, by record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub batches: u64,
    pub records: u64,
    /// Outputs handed to the sink.
    pub outputs: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
}

impl Counts {
    fn of(results: &[RecordResult], dead_lettered: usize) -> Self {
        let mut counts = Self { batches: 1, records: results.len() as u64, ..Self::default() };
        for result in results {
            counts.outputs += result.output_count() as u64;
            if matches!(result, RecordResult::Dropped) {
                counts.dropped += 1;
            }
        }
        counts.dead_lettered = dead_lettered as u64;
        counts
    }

    fn add(&mut self, other: Counts) {
        self.batches += other.batches;
        self.records += other.records;
        self.outputs += other.outputs;
        self.dropped += other.dropped;
        self.dead_lettered += other.dead_lettered;
    }
}

#[cfg(test)]
mod parallel_tests;
#[cfg(test)]
mod tests;
