//! The write stage: outputs to the sink, failures to the dead-letter
//! destination, then an acknowledgement so the driver may commit. Transient
//! failures are retried here, holding the batch; nothing is acknowledged
//! before it is durably written.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::transform_stage::Transformed;
use super::{Counts, PipelineError};
use crate::config::DeliveryConfig;
use crate::error::{ServiceError, with_timeout};
use crate::record::describe_position;
use crate::sink::dead_letter::{DeadLetter, DeadLetterSink};
use crate::sink::{Prepare, Sink};

/// What a sink's preparer makes of a batch.
pub type PreparedFor<K> = <<K as Sink>::Prepare as Prepare>::Prepared;
use crate::record::RecordResult;

/// A batch written; its checkpoint may be committed.
pub struct Ack<C> {
    pub checkpoint: C,
    pub counts: Counts,
}

pub struct Writer<K, D> {
    pub pipeline: String,
    pub sink: K,
    pub dead_letters: Option<D>,
    pub delivery: DeliveryConfig,
}

impl<K: Sink, D: DeadLetterSink> Writer<K, D> {
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
        let mut backoff = Backoff::new(&self.delivery);
        let rejections = loop {
            let limit = self.delivery.call_timeout;
            match with_timeout(limit, "writing to the sink", self.sink.write(batch, results, prepared)).await {
                Ok(rejections) => break rejections,
                Err(error) => retry_or_fail(error, &mut backoff, stop).await?,
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
            let send = dead_letters.send(&self.pipeline, batch, &letters);
            match with_timeout(self.delivery.call_timeout, "sending dead letters", send).await {
                Ok(()) => break,
                Err(error) => retry_or_fail(error, &mut backoff, stop).await?,
            }
        }
        for letter in &letters {
            let position = describe_position(&batch.source, &batch.records[letter.input].origin);
            tracing::warn!(%position, stage = %letter.stage, reason = %letter.reason, "record sent to the dead-letter topic");
        }
        Ok(counts)
    }
}

/// Waits out a transient error; a permanent one (or shutdown) ends the write.
async fn retry_or_fail(
    error: ServiceError,
    backoff: &mut Backoff,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    if !error.transient {
        return Err(PipelineError::Service(error));
    }
    backoff.wait(&error, stop).await.map_err(|_| PipelineError::Interrupted)
}
