//! The transform stage: one or more instances of the chain, each on a
//! thread of its own (WebAssembly calls are CPU-bound and synchronous, so
//! they stay off the async workers). Each instance takes the next batch
//! polled, whichever is free; the writer puts their results back in poll
//! order. Every instance keeps its own deadlines, memory, recycling and
//! health: one instance's trouble is judged on the batches it ran.
//!
//! A batch the chain cannot process as a whole (a trap, a timeout, a
//! rejected batch) is retried one record at a time, each with its
//! transform's `record_timeout`, so one poison record goes to the
//! dead-letter destination and its neighbours go on. A transform that stops
//! on most records is not ground through record by record: the pipeline's
//! `on_broken_transform` policy decides (see [`super::health`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PipelineError;
use super::dispatch::InstanceInput;
use super::health::{Broken, TransformHealth};
use super::resequence::Sequenced;
use crate::config::{DeliveryConfig, OnBrokenTransform};
use crate::error::error_chain;
use crate::record::Batch;
use crate::record::{Failure, RecordResult};
use crate::sink::Prepare;
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::{BatchTransformed, TransformBroken, TransformRecovered};
use crate::wasm::{TransformChain, TransformError};

/// A batch with one result per record, prepared for the sink.
pub struct Transformed<C, P> {
    pub batch: Batch,
    pub results: Vec<RecordResult>,
    pub prepared: P,
    pub checkpoint: C,
}

impl<C, P> Transformed<C, P> {
    /// Whether a transform failed a record (it needs a dead letter).
    pub fn has_failures(&self) -> bool {
        self.results.iter().any(|result| matches!(result, RecordResult::Failed(_)))
    }
}

/// One instance: its own chain, and the batches handed to it.
pub struct Instance<C> {
    pub chain: TransformChain,
    pub input: InstanceInput<C>,
}

/// Transformed batches, numbered, or the error that stopped an instance.
pub type Output<C, P> = mpsc::Sender<Result<Sequenced<Transformed<C, P>>, PipelineError>>;

/// One instance: transforms (and prepares for the sink) batches until the
/// input closes, the output is dropped or `stop` is cancelled.
pub fn run<C, P: Prepare>(
    instance: Instance<C>,
    preparer: P,
    broken_instances: &AtomicUsize,
    output: &Output<C, P::Prepared>,
    delivery: &DeliveryConfig,
    stop: &CancellationToken,
    telemetry: &PipelineTelemetry,
) -> Result<(), PipelineError> {
    let mut health = TransformHealth::default();
    let mut reports = Reports { reported: None, broken_instances, telemetry };
    let Instance { mut chain, mut input } = instance;
    while let Some(Sequenced { number, item: polled }) = input.next() {
        let started = Instant::now();
        let mut pause = delivery.retry_initial;
        let results = loop {
            let abort_when_broken = delivery.on_broken_transform != OnBrokenTransform::DeadLetter;
            let verdict = run_watched(&mut chain, &polled.batch, &mut health, abort_when_broken);
            let broken = match verdict {
                Watched::Ran(results) => {
                    if health.broken().is_none() {
                        reports.recovered();
                    }
                    break results;
                }
                Watched::Broken(broken) => broken,
            };
            match delivery.on_broken_transform {
                OnBrokenTransform::Stop => {
                    TransformBroken { broken: &broken, policy: delivery.on_broken_transform, retry_in: None }
                        .emit(telemetry);
                    return Err(PipelineError::TransformBroken { broken });
                }
                // `run_watched` does not give up on a batch under this policy.
                OnBrokenTransform::DeadLetter => unreachable!("dead_letter runs every record"),
                OnBrokenTransform::BackOff => {
                    reports.broken(broken, delivery.on_broken_transform, Some(pause));
                    if !sleep_unless(pause, stop) {
                        // Shutdown with the batch still held: the other
                        // instances may be waiting for batches, so the
                        // writer is told, and stops the pipeline.
                        return Err(PipelineError::Interrupted);
                    }
                    pause = pause.saturating_mul(2).min(delivery.retry_max);
                }
            }
        };
        if delivery.on_broken_transform == OnBrokenTransform::DeadLetter {
            match health.broken() {
                Some(broken) if reports.reported.is_none() => {
                    reports.broken(broken, delivery.on_broken_transform, None);
                }
                Some(_) => {}
                None => reports.recovered(),
            }
        }
        let prepared = preparer.prepare(&polled.batch, &results);
        BatchTransformed { elapsed: started.elapsed() }.emit(telemetry);
        let transformed = Transformed { batch: polled.batch, results, prepared, checkpoint: polled.checkpoint };
        if output.blocking_send(Ok(Sequenced { number, item: transformed })).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// What one instance has reported of its transform's health. The pipeline
/// reports a transform broken while any instance finds it so, and recovered
/// when the last one does: `broken_instances` counts them across instances.
struct Reports<'a> {
    reported: Option<Broken>,
    broken_instances: &'a AtomicUsize,
    telemetry: &'a PipelineTelemetry,
}

impl Reports<'_> {
    /// Reports `broken` (again, under `back_off`, with the next pause).
    fn broken(&mut self, broken: Broken, policy: OnBrokenTransform, retry_in: Option<Duration>) {
        TransformBroken { broken: &broken, policy, retry_in }.emit(self.telemetry);
        if self.reported.replace(broken).is_none() {
            self.broken_instances.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The instance's transform runs again; the pipeline's, once no other
    /// instance finds it broken.
    fn recovered(&mut self) {
        let Some(broken) = self.reported.take() else { return };
        if self.broken_instances.fetch_sub(1, Ordering::SeqCst) == 1 {
            TransformRecovered { transform: &broken.transform }.emit(self.telemetry);
        }
    }
}

/// Sleeps `pause` in short steps; false if `stop` came first.
fn sleep_unless(pause: Duration, stop: &CancellationToken) -> bool {
    const STEP: Duration = Duration::from_millis(50);
    // A pause past what an Instant holds (a pipeline may ask for
    // centuries) lasts until `stop`.
    let until = Instant::now().checked_add(pause);
    while !stop.is_cancelled() {
        let left = until.map_or(STEP, |until| until.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STEP));
    }
    false
}

/// What became of a batch under watch.
enum Watched {
    Ran(Vec<RecordResult>),
    /// Given up on: most recent records stopped their transform.
    Broken(Broken),
}

/// Runs the batch; if it fails as a whole, runs each record alone, noting
/// in `health` which ran and which stopped their transform. With
/// `abort_when_broken`, gives the batch up as soon as the transform looks
/// broken.
fn run_watched(
    chain: &mut TransformChain,
    batch: &Batch,
    health: &mut TransformHealth,
    abort_when_broken: bool,
) -> Watched {
    let error = match chain.run(batch) {
        Ok(results) => {
            health.ran(batch.records.len());
            return Watched::Ran(results);
        }
        Err(error) => error,
    };
    if batch.records.len() == 1 {
        return Watched::Ran(vec![alone_failed(&error, health)]);
    }
    tracing::warn!(records = batch.records.len(), "{}; retrying record by record", error_chain(&error));
    let mut results = Vec::with_capacity(batch.records.len());
    for record in &batch.records {
        let single = Batch { source: batch.source.clone(), records: vec![record.clone()] };
        let result = match chain.run(&single) {
            Ok(mut result) => {
                health.ran(1);
                result.pop().expect("one result per record")
            }
            Err(error) => alone_failed(&error, health),
        };
        if abort_when_broken && let Some(broken) = health.broken() {
            return Watched::Broken(broken);
        }
        results.push(result);
    }
    Watched::Ran(results)
}

/// The result of a record that failed alone, noted in `health` when it
/// stopped its transform (a rejected batch is the guest's own answer).
fn alone_failed(error: &TransformError, health: &mut TransformHealth) -> RecordResult {
    // The error's own line: a trap's cause chain holds a multi-line
    // backtrace, which belongs in the log, not in a dead letter's reason.
    tracing::debug!("{}", error_chain(error));
    if error.stopped_the_instance() {
        health.stopped(error.transform());
    } else {
        health.ran(1);
    }
    RecordResult::Failed(Failure { transform: error.transform().to_owned(), reason: error.to_string() })
}

/// Runs the batch; if it fails as a whole, runs each record alone: every
/// record gets its result, as `ferry test` reports them.
pub fn run_isolating(chain: &mut TransformChain, batch: &Batch) -> Vec<RecordResult> {
    match run_watched(chain, batch, &mut TransformHealth::default(), false) {
        Watched::Ran(results) => results,
        Watched::Broken(_) => unreachable!("only given up on when asked to"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken() -> Broken {
        Broken { transform: "enrich".into(), stopped: 20, seen: 20 }
    }

    fn reported_broken(telemetry: &PipelineTelemetry) -> bool {
        telemetry.status().failing.contains_key("transform")
    }

    #[test]
    fn given_two_instances_then_the_transform_is_broken_until_the_last_recovers() {
        let telemetry = PipelineTelemetry::detached("p");
        let broken_instances = AtomicUsize::new(0);
        let mut first = Reports { reported: None, broken_instances: &broken_instances, telemetry: &telemetry };
        let mut second = Reports { reported: None, broken_instances: &broken_instances, telemetry: &telemetry };
        first.broken(broken(), OnBrokenTransform::BackOff, Some(Duration::from_secs(1)));
        second.broken(broken(), OnBrokenTransform::BackOff, Some(Duration::from_secs(1)));
        // Reported again on its next retry: still one instance, not two.
        first.broken(broken(), OnBrokenTransform::BackOff, Some(Duration::from_secs(2)));
        first.recovered();
        assert!(reported_broken(&telemetry), "the second instance still finds it broken");
        second.recovered();
        assert!(!reported_broken(&telemetry));
        second.recovered();
        assert_eq!(broken_instances.load(Ordering::SeqCst), 0, "a recovery without a break counts nothing");
    }
}
