//! Where outputs go. A sink writes a batch's outputs and says which inputs it
//! could not write (and why); those go to the dead-letter destination. An
//! error means nothing is known about the batch: it is retried whole, which
//! idempotent writes make safe.

pub mod mongodb;

use std::future::Future;

use crate::record::Batch;
use crate::service_error::ServiceError;
use crate::wasm::RecordResult;

/// An input whose outputs cannot be written, whatever the retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the input record in its batch.
    pub input: usize,
    pub reason: String,
}

pub trait Sink: Send {
    /// Writes the emitted outputs of `results` (one entry per record of
    /// `batch`), returning the inputs that cannot be written.
    fn write(
        &mut self,
        batch: &Batch,
        results: &[RecordResult],
    ) -> impl Future<Output = Result<Vec<Rejection>, ServiceError>> + Send;
}
