//! The transform stage, on a thread of its own: WebAssembly calls are
//! CPU-bound and synchronous, so they stay off the async workers.
//!
//! A batch the chain cannot process as a whole (a trap, a timeout, a
//! rejected batch) is retried one record at a time, so one poison record
//! goes to the dead-letter destination and its neighbours go on.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::error::error_chain;
use crate::record::Batch;
use crate::record::{Failure, RecordResult};
use crate::sink::Prepare;
use crate::source::Polled;
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::BatchTransformed;
use crate::wasm::TransformChain;

/// A batch with one result per record, prepared for the sink.
pub struct Transformed<C, P> {
    pub batch: Batch,
    pub results: Vec<RecordResult>,
    pub prepared: P,
    pub checkpoint: C,
}

/// Transforms (and prepares for the sink) batches until the input closes or
/// the output is dropped.
pub fn run<C, P: Prepare>(
    mut chain: TransformChain,
    preparer: P,
    mut input: mpsc::Receiver<Polled<C>>,
    output: mpsc::Sender<Transformed<C, P::Prepared>>,
    telemetry: &PipelineTelemetry,
) {
    while let Some(polled) = input.blocking_recv() {
        let started = Instant::now();
        let results = run_isolating(&mut chain, &polled.batch);
        let prepared = preparer.prepare(&polled.batch, &results);
        BatchTransformed { elapsed: started.elapsed() }.emit(telemetry);
        let transformed = Transformed { batch: polled.batch, results, prepared, checkpoint: polled.checkpoint };
        if output.blocking_send(transformed).is_err() {
            return;
        }
    }
}

/// Runs the batch; if it fails as a whole, runs each record alone.
pub fn run_isolating(chain: &mut TransformChain, batch: &Batch) -> Vec<RecordResult> {
    let error = match chain.run(batch) {
        Ok(results) => return results,
        Err(error) => error,
    };
    if batch.records.len() == 1 {
        // The error's own line: a trap's cause chain holds a multi-line
        // backtrace, which belongs in the log, not in a dead letter's reason.
        tracing::debug!("{}", error_chain(&error));
        return vec![RecordResult::Failed(Failure {
            transform: error.transform().to_owned(),
            reason: error.to_string(),
        })];
    }
    tracing::warn!(records = batch.records.len(), "{}; retrying record by record", error_chain(&error));
    batch
        .records
        .iter()
        .map(|record| {
            let single = Batch { source: batch.source.clone(), records: vec![record.clone()] };
            run_isolating(chain, &single).pop().expect("one result per record")
        })
        .collect()
}
