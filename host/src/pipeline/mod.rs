//! The pipeline: poll → transform → write → commit, with the stages
//! overlapped and a bounded number of batches in flight.
//!
//! Three stages run at once: the driver (this module) polls the source and
//! commits; the transform stage runs the WebAssembly chain on its own
//! thread; the writer writes, dead-letters and acknowledges. A batch's
//! position is committed only after the writer acknowledged it, in poll
//! order, so a crash at any moment replays from the last commit and
//! idempotent writes turn the replay into exactly-once results.

mod backoff;
mod stage_panic;
mod transform_stage;
mod writer;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use backoff::{Backoff, Interrupted};
pub use stage_panic::StagePanic;
pub use transform_stage::run_isolating;

use crate::config::{DeliveryConfig, PipelineConfig, SinkConfig, SourceConfig};
use crate::error::{ServiceError, with_timeout};
use crate::record::RecordResult;
use crate::sink::Sink;
use crate::sink::dead_letter::{DeadLetterSink, IggyDeadLetters};
use crate::sink::iggy::IggySink;
use crate::sink::mongodb::MongoSink;
use crate::source::mongodb::PositionStore;
use crate::source::{IggySource, MongoSource, Polled, Source};
use crate::wasm::{EngineError, TransformChain, TransformError, WasmRuntime};
use transform_stage::Transformed;
use writer::{Ack, PreparedFor, Writer};

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

/// Runs the pipeline `config` describes until `shutdown` fires (then it
/// finishes the batches in flight, commits them and returns) or a failure
/// that waiting cannot fix.
pub async fn run(
    config: PipelineConfig,
    runtime: WasmRuntime,
    shutdown: CancellationToken,
) -> Result<Counts, PipelineError> {
    let transforms = config.transforms.clone();
    // Configuring a transform runs guest code, which must not block an
    // async worker thread.
    let chain = tokio::task::spawn_blocking(move || -> Result<TransformChain, TransformError> {
        let loaded = transforms.iter().map(|transform| runtime.load(transform)).collect::<Result<_, _>>()?;
        let mut chain = TransformChain::new(loaded);
        chain.start()?;
        Ok(chain)
    })
    .await
    .map_err(|_| PipelineError::StageLost)??;
    let fallback = config.iggy_connection();
    let dead_letters = match &config.dead_letter {
        Some(dead_letter) => {
            let connection =
                dead_letter.connection(fallback.as_ref()).expect("validated: a dead-letter address exists");
            Some(IggyDeadLetters::new(connection, &dead_letter.stream, &dead_letter.topic)?)
        }
        None => None,
    };
    let name = config.name.clone();
    let delivery = config.delivery.clone();
    tracing::info!(pipeline = %name, "pipeline started");
    let counts = match (config.source, config.sink) {
        (SourceConfig::Iggy(source), SinkConfig::Mongodb(sink)) => {
            let source = IggySource::new(source)?;
            let sink = MongoSink::connect(sink).await?;
            let writer = Writer { pipeline: name.clone(), sink, dead_letters, delivery: delivery.clone() };
            drive(source, chain, writer, delivery, shutdown).await
        }
        (SourceConfig::Mongodb(source), SinkConfig::Iggy(sink)) => {
            let store = PositionStore::new(sink.connection(), &sink.stream, &sink.topic);
            let source = MongoSource::new(source, &name, store).await?;
            let sink = IggySink::new(sink);
            let writer = Writer { pipeline: name.clone(), sink, dead_letters, delivery: delivery.clone() };
            drive(source, chain, writer, delivery, shutdown).await
        }
        _ => unreachable!("validated: Iggy to MongoDB or MongoDB to Iggy"),
    };
    if let Ok(counts) = &counts {
        tracing::info!(pipeline = %name, ?counts, "pipeline stopped");
    }
    counts
}

/// The pipeline's core, independent of which servers are at either end.
pub async fn drive<S, K, D>(
    mut source: S,
    chain: TransformChain,
    writer: Writer<K, D>,
    delivery: DeliveryConfig,
    shutdown: CancellationToken,
) -> Result<Counts, PipelineError>
where
    S: Source,
    K: Sink + 'static,
    D: DeadLetterSink + 'static,
{
    let window = delivery.max_in_flight;
    let (to_transform, transform_input) = mpsc::channel::<Polled<S::Checkpoint>>(window);
    let (to_writer, writer_input) = mpsc::channel::<Transformed<S::Checkpoint, PreparedFor<K>>>(window);
    let (ack_sender, mut acks) = mpsc::channel(window + 1);
    // Stops the writer's retries on shutdown or when the driver gives up.
    let stop = shutdown.child_token();
    let preparer = writer.sink.preparer();
    let transformer = tokio::task::spawn_blocking(move || {
        stage_panic::catch(|| transform_stage::run(chain, preparer, transform_input, to_writer))
    });
    let writing = tokio::spawn(stage_panic::catch_async(writer.run(writer_input, ack_sender, stop.clone())));

    let mut driver = Driver {
        source: &mut source,
        backoff: Backoff::new(&delivery),
        delivery: delivery.clone(),
        counts: Counts::default(),
        in_flight: 0,
    };
    let outcome = stage_panic::catch_async(driver.run(&to_transform, &mut acks, window, &shutdown)).await;
    let (counts, in_flight) = (driver.counts, driver.in_flight);

    stop.cancel();
    drop(to_transform);
    drop(acks);
    // A stage that panicked is why the others stopped: its panic is the
    // pipeline's error, whatever the driver made of the closed channels.
    // (A join error is a cancelled task; it has nothing to report.)
    let written = writing.await.unwrap_or(Ok(()));
    let transformed = transformer.await.unwrap_or(Ok(()));
    source.close().await;
    let outcome = match (outcome, written, transformed) {
        (Err(panic), _, _) => Err(PipelineError::StagePanicked { stage: "poll and commit", panic }),
        (_, Err(panic), _) => Err(PipelineError::StagePanicked { stage: "write", panic }),
        (_, _, Err(panic)) => Err(PipelineError::StagePanicked { stage: "transform", panic }),
        (Ok(outcome), Ok(()), Ok(())) => outcome,
    };
    match outcome {
        Ok(()) => Ok(counts),
        // Shutdown cut a retry short: nothing is lost, only left uncommitted.
        Err(PipelineError::Interrupted) if shutdown.is_cancelled() => {
            tracing::warn!(
                batches = in_flight,
                "stopped with batches not yet written; they are replayed on the next start"
            );
            Ok(counts)
        }
        Err(error) => Err(error),
    }
}

/// Polls while the window has room, and commits acknowledged batches.
struct Driver<'s, S: Source> {
    source: &'s mut S,
    backoff: Backoff,
    delivery: DeliveryConfig,
    counts: Counts,
    in_flight: usize,
}

impl<S: Source> Driver<'_, S> {
    async fn run(
        &mut self,
        to_transform: &mpsc::Sender<Polled<S::Checkpoint>>,
        acks: &mut mpsc::Receiver<Result<Ack<S::Checkpoint>, PipelineError>>,
        window: usize,
        shutdown: &CancellationToken,
    ) -> Result<(), PipelineError> {
        loop {
            let stopping = shutdown.is_cancelled();
            if stopping && self.in_flight == 0 {
                return Ok(());
            }
            if !stopping && self.in_flight < window {
                match with_timeout(self.delivery.call_timeout, "polling the source", self.source.poll()).await {
                    Ok(Some(polled)) => {
                        self.backoff.reset();
                        to_transform.send(polled).await.map_err(|_| PipelineError::StageLost)?;
                        self.in_flight += 1;
                        continue;
                    }
                    Ok(None) => {
                        let pause = self.source.idle_pause();
                        tokio::select! {
                            ack = acks.recv() => self.acknowledged(ack, shutdown).await?,
                            () = tokio::time::sleep(pause) => {}
                            () = shutdown.cancelled() => {}
                        }
                        continue;
                    }
                    Err(error) if error.transient => {
                        // Acknowledged batches wait in their channel meanwhile;
                        // an interrupted wait ends the loop at the next turn.
                        let _ = self.backoff.wait(&error, shutdown).await;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            tokio::select! {
                ack = acks.recv() => self.acknowledged(ack, shutdown).await?,
                () = shutdown.cancelled(), if !stopping => {}
            }
        }
    }

    /// Commits an acknowledged batch (retrying transient failures).
    async fn acknowledged(
        &mut self,
        ack: Option<Result<Ack<S::Checkpoint>, PipelineError>>,
        shutdown: &CancellationToken,
    ) -> Result<(), PipelineError> {
        let ack = match ack {
            Some(Ok(ack)) => ack,
            Some(Err(error)) => return Err(error),
            // The writer stopped: on shutdown that is a retry cut short.
            None if shutdown.is_cancelled() => return Err(PipelineError::Interrupted),
            None => return Err(PipelineError::StageLost),
        };
        let mut backoff = Backoff::new(&self.delivery);
        loop {
            let commit = self.source.commit(ack.checkpoint.clone());
            match with_timeout(self.delivery.call_timeout, "committing to the source", commit).await {
                Ok(()) => break,
                Err(error) if error.transient => {
                    if backoff.wait(&error, shutdown).await.is_err() {
                        // Shutting down with the source unreachable: the
                        // batch stays uncommitted and is replayed next start.
                        return Err(PipelineError::Interrupted);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        let checkpoint = &ack.checkpoint;
        tracing::debug!(?checkpoint, "committed");
        self.in_flight -= 1;
        self.counts.add(ack.counts);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
