//! The write stage: outputs to the sink, failures to the dead-letter
//! destination, then an acknowledgement so the driver may commit. Transient
//! failures are retried here, holding the batch; nothing is acknowledged
//! before it is durably written.
//!
//! Batches arrive numbered from the transform instances and are taken in
//! poll order. A sink with several lanes (MongoDB's `max_concurrent_writes`)
//! writes a batch while earlier ones are still in flight when neither can
//! change what the other writes (see [`Overlap`]); otherwise it waits for
//! them. Either way batches are finished (dead letters sent, acknowledged)
//! in poll order, so the driver commits only a prefix that is fully written.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::resequence::{Resequencer, Sequenced};
use super::transform_stage::Transformed;
use super::{Counts, PipelineError};
use crate::config::DeliveryConfig;
use crate::error::{ServiceError, with_timeout};
use crate::record::DeadLetter;
use crate::record::{RecordResult, describe_position};
use crate::sink::dead_letter::DeadLetterSink;
use crate::sink::{Overlap, Prepare, Rejection, Sink};
use crate::telemetry::events::BatchWritten;
use crate::telemetry::{PipelineTelemetry, Stage};

/// What a sink's preparer makes of a batch.
pub type PreparedFor<K> = <<K as Sink>::Prepare as Prepare>::Prepared;

/// A transformed batch for sink `K`, checkpoint `C`.
type TransformedFor<C, K> = Transformed<C, PreparedFor<K>>;

/// What the transform instances hand the writer: a numbered batch, or the
/// error that stopped one of them (which stops the pipeline at once).
pub type FromTransform<C, K> = Result<Sequenced<TransformedFor<C, K>>, PipelineError>;

/// A batch written; its checkpoint may be committed.
pub struct Ack<C> {
    pub checkpoint: C,
    pub counts: Counts,
}

/// The write stage of one pipeline.
pub struct Writer<K, D> {
    pub sink: K,
    pub dead_letters: Option<D>,
    pub delivery: DeliveryConfig,
    /// Where the stage reports; it names the pipeline, in dead letters too.
    pub telemetry: PipelineTelemetry,
}

/// A batch whose sink write finished: the lane it used, and the outcome.
struct Landed<C, K: Sink> {
    lane: K,
    transformed: Arc<TransformedFor<C, K>>,
    written: Result<Vec<Rejection>, PipelineError>,
    started: Instant,
}

impl<K: Sink + 'static, D: DeadLetterSink> Writer<K, D> {
    pub fn new(sink: K, dead_letters: Option<D>, delivery: &DeliveryConfig, telemetry: &PipelineTelemetry) -> Self {
        Self { sink, dead_letters, delivery: delivery.clone(), telemetry: telemetry.clone() }
    }

    /// Writes batches until the input closes, a batch fails for good
    /// (reported through `acks`), or `stop` fires mid-retry. `lanes` are the
    /// sink's extra handles (connected), for writing beside `self.sink`.
    pub async fn run<C: Clone + Send + Sync + 'static>(
        self,
        lanes: Vec<K>,
        mut input: mpsc::Receiver<FromTransform<C, K>>,
        acks: mpsc::Sender<Result<Ack<C>, PipelineError>>,
        stop: CancellationToken,
    ) {
        let Self { sink, dead_letters, delivery, telemetry } = self;
        let mut letters = Letters { dead_letters, delivery: delivery.clone(), telemetry: telemetry.clone() };
        let mut idle: Vec<K> = lanes;
        idle.push(sink);
        let mut arrived = Resequencer::default();
        // The next batch in poll order, waiting for a lane or for an earlier
        // batch it depends on.
        let mut held: Option<TransformedFor<C, K>> = None;
        // Batches being written, oldest first: the futures, and what they
        // write (to tell whether the next batch depends on them).
        let mut in_flight = FuturesOrdered::new();
        let mut writing: VecDeque<Arc<TransformedFor<C, K>>> = VecDeque::new();
        let mut input_open = true;
        // Without a dead-letter destination a failed record stops the
        // pipeline at its batch.
        let can_set_aside = letters.dead_letters.is_some();
        let stops_pipeline = |batch: &TransformedFor<C, K>| !can_set_aside && batch.has_failures();
        loop {
            if held.is_none() {
                held = arrived.pop();
            }
            if let Some(next) = held.take_if(|next| {
                !idle.is_empty()
                    && !writing.iter().any(|earlier| {
                        // A batch that will stop the pipeline is written
                        // after every batch before it and before any after
                        // it, so that what is in MongoDB stops at it.
                        next.prepared.depends_on(&earlier.prepared) || stops_pipeline(earlier) || stops_pipeline(next)
                    })
            }) {
                let lane = idle.pop().expect("checked above");
                let next = Arc::new(next);
                writing.push_back(next.clone());
                in_flight.push_back(write_on(lane, next, delivery.clone(), telemetry.clone(), stop.clone()));
                continue;
            }
            if !input_open && held.is_none() && in_flight.is_empty() {
                return;
            }
            tokio::select! {
                received = input.recv(), if input_open => match received {
                    Some(Ok(sequenced)) => arrived.push(sequenced),
                    // A transform instance stopped the pipeline: report it
                    // now; what is in flight is not acknowledged.
                    Some(Err(error)) => {
                        let _ = acks.send(Err(error)).await;
                        return;
                    }
                    None => input_open = false,
                },
                Some(landed) = in_flight.next(), if !in_flight.is_empty() => {
                    let Landed { lane, transformed, written, started } = landed;
                    writing.pop_front();
                    idle.push(lane);
                    let finished = match written {
                        Ok(rejections) => letters.finish(&transformed, rejections, started, &stop).await,
                        Err(error) => Err(error),
                    };
                    let stopped = finished.is_err();
                    let ack = finished.map(|counts| Ack { checkpoint: transformed.checkpoint.clone(), counts });
                    if matches!(ack, Err(PipelineError::Interrupted)) || acks.send(ack).await.is_err() || stopped {
                        return;
                    }
                }
            }
        }
    }
}

/// Writes one batch's outputs on `lane`, retrying transient failures.
async fn write_on<C, K: Sink>(
    mut lane: K,
    transformed: Arc<TransformedFor<C, K>>,
    delivery: DeliveryConfig,
    telemetry: PipelineTelemetry,
    stop: CancellationToken,
) -> Landed<C, K> {
    let started = Instant::now();
    let mut backoff = Backoff::new(&delivery, &telemetry);
    let written = loop {
        let Transformed { batch, results, prepared, .. } = &*transformed;
        let write = lane.write(batch, results, prepared);
        match with_timeout(delivery.call_timeout, "writing to the sink", write).await {
            Ok(rejections) => break Ok(rejections),
            Err(error) => {
                if let Err(error) = retry_or_fail(Stage::Write, error, &mut backoff, &stop).await {
                    break Err(error);
                }
            }
        }
    };
    Landed { lane, transformed, written, started }
}

/// Where written batches' failed records go, in poll order.
struct Letters<D> {
    dead_letters: Option<D>,
    delivery: DeliveryConfig,
    telemetry: PipelineTelemetry,
}

impl<D: DeadLetterSink> Letters<D> {
    /// Sends a written batch's dead letters and counts what it did.
    async fn finish<C, P>(
        &mut self,
        transformed: &Transformed<C, P>,
        rejections: Vec<Rejection>,
        started: Instant,
        stop: &CancellationToken,
    ) -> Result<Counts, PipelineError> {
        let Transformed { batch, results, .. } = transformed;
        let mut letters: Vec<DeadLetter> = results
            .iter()
            .enumerate()
            .filter_map(|(input, result)| match result {
                RecordResult::Failed(failure) => Some(DeadLetter {
                    input,
                    stage: format!("transform:{}", failure.transform),
                    reason: failure.reason.clone(),
                }),
                _ => None,
            })
            .collect();
        letters.extend(rejections.into_iter().map(|rejection| DeadLetter {
            input: rejection.input,
            stage: "sink".to_owned(),
            reason: rejection.reason,
        }));
        letters.sort_by_key(|letter| letter.input);
        let counts = Counts::of(results, letters.len());
        if letters.is_empty() {
            BatchWritten { batch, results, letters: &letters, elapsed: started.elapsed() }.emit(&self.telemetry);
            return Ok(counts);
        }
        let Some(dead_letters) = &mut self.dead_letters else {
            let first = &letters[0];
            return Err(PipelineError::Undeliverable {
                position: describe_position(&batch.source, &batch.records[first.input].origin),
                stage: first.stage.clone(),
                reason: first.reason.clone(),
            });
        };
        let mut backoff = Backoff::new(&self.delivery, &self.telemetry);
        loop {
            let send = dead_letters.send(self.telemetry.name(), batch, &letters);
            match with_timeout(self.delivery.call_timeout, "sending dead letters", send).await {
                Ok(()) => break,
                Err(error) => retry_or_fail(Stage::DeadLetter, error, &mut backoff, stop).await?,
            }
        }
        BatchWritten { batch, results, letters: &letters, elapsed: started.elapsed() }.emit(&self.telemetry);
        Ok(counts)
    }
}

/// Waits out a transient error; a permanent one (or shutdown) ends the write.
async fn retry_or_fail(
    stage: Stage,
    error: ServiceError,
    backoff: &mut Backoff,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    if !error.transient {
        return Err(PipelineError::Service(error));
    }
    backoff.wait(stage, &error, stop).await.map_err(|_| PipelineError::Interrupted)
}
