//! Where outputs go. A sink writes a batch's outputs and says which inputs it
//! could not write (and why); those go to the dead-letter destination. An
//! error means nothing is known about the batch: it is retried whole, which
//! idempotent writes make safe.

pub mod blackhole;
pub mod console;
pub mod dead_letter;
pub mod iggy;
pub mod mongodb;

use std::future::Future;

use crate::error::ServiceError;
use crate::record::Batch;
use crate::record::RecordResult;

/// An input whose outputs cannot be written, whatever the retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the input record in its batch.
    pub input: usize,
    pub reason: String,
}

/// The CPU half of writing: encoding a batch's outputs for the sink. The
/// pipeline runs it on the transform stage's thread, so the sink's
/// connection never waits on the CPU between writes.
pub trait Prepare: Send + 'static {
    type Prepared: Overlap + Send + Sync + 'static;

    fn prepare(&self, batch: &Batch, results: &[RecordResult]) -> Self::Prepared;
}

/// Whether two prepared batches may be written at the same time.
pub trait Overlap {
    /// True when writing the two in either order, or interleaved, could end
    /// differently from writing them in source order. Unless a sink knows
    /// better, every batch depends on every other.
    fn depends_on(&self, _other: &Self) -> bool {
        true
    }
}

/// Sinks without a plan of their own (the blackhole, tests).
impl Overlap for () {}

pub trait Sink: Send + Sized {
    type Prepare: Prepare;

    /// What encodes batches for this sink.
    fn preparer(&self) -> Self::Prepare;

    /// More handles on the same server, for writing independent batches
    /// beside this one; none for a sink that writes one batch at a time.
    /// Each handle is connected when this one is.
    fn more_lanes(&self) -> Vec<Self> {
        Vec::new()
    }

    /// Reaches the server, so the pipeline counts as running only once it
    /// can write.
    fn connect(&mut self) -> impl Future<Output = Result<(), ServiceError>> + Send;

    /// Writes a prepared batch (whose `results` have one entry per record of
    /// `batch`), returning the inputs that cannot be written.
    fn write(
        &mut self,
        batch: &Batch,
        results: &[RecordResult],
        prepared: &<Self::Prepare as Prepare>::Prepared,
    ) -> impl Future<Output = Result<Vec<Rejection>, ServiceError>> + Send;
}
