//! The write stage: outputs to the sink, failures to the dead-letter
//! destination, then an acknowledgement so the driver may commit. Transient
//! failures are retried here, holding the batch; nothing is acknowledged
//! before it is durably written.

use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::transform_stage::Transformed;
use super::{Counts, PipelineError};
use crate::config::DeliveryConfig;
use crate::error::{ServiceError, with_timeout};
use crate::record::DeadLetter;
use crate::record::{RecordResult, describe_position};
use crate::sink::dead_letter::DeadLetterSink;
use crate::sink::{Prepare, Sink};
use crate::telemetry::events::BatchWritten;
use crate::telemetry::{PipelineTelemetry, Stage};

/// What a sink's preparer makes of a batch.
pub type PreparedFor<K> = <<K as Sink>::Prepare as Prepare>::Prepared;

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

impl<K: Sink, D: DeadLetterSink> Writer<K, D> {
    pub fn new(sink: K, dead_letters: Option<D>, delivery: &DeliveryConfig, telemetry: &PipelineTelemetry) -> Self {
        Self { sink, dead_letters, delivery: delivery.clone(), telemetry: telemetry.clone() }
    }

    /// Writes batches in order until the input closes, a batch fails for
    /// good (reported through `acks`), or `stop` fires mid-retry.
    pub async fn run<C>(
        mut self,
        mut input: mpsc::Receiver<Transformed<C, PreparedFor<K>>>,
        acks: mpsc::Sender<Result<Ack<C>, PipelineError>>,
        stop: CancellationToken,
    ) {
        while let Some(transformed) = input.recv().await {
            let written = self.write(&transformed, &stop).await;
            let stopped = written.is_err();
            let ack = written.map(|counts| Ack { checkpoint: transformed.checkpoint, counts });
            if matches!(ack, Err(PipelineError::Interrupted)) || acks.send(ack).await.is_err() || stopped {
                return;
            }
        }
    }

    async fn write<C>(
        &mut self,
        transformed: &Transformed<C, PreparedFor<K>>,
        stop: &CancellationToken,
    ) -> Result<Counts, PipelineError> {
        let Transformed { batch, results, prepared, .. } = transformed;
        let started = Instant::now();
        let mut backoff = Backoff::new(&self.delivery, &self.telemetry);
        let rejections = loop {
            let limit = self.delivery.call_timeout;
            match with_timeout(limit, "writing to the sink", self.sink.write(batch, results, prepared)).await {
                Ok(rejections) => break rejections,
                Err(error) => retry_or_fail(Stage::Write, error, &mut backoff, stop).await?,
            }
        };
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
        backoff.reset();
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
