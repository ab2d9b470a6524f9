//! The driver: polls while the window has room, hands batches to the
//! transform stage, and commits what the writer acknowledged, in order,
//! a commit interval's worth of batches at a time.
//! Before any of it, both ends are reached (and the pipeline counts as
//! running only once they are).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backoff::Backoff;
use super::dispatch::{Dispatch, InstanceInput};
use super::resequence::Sequenced;
use super::transform_stage;
use super::unstored::Unstored;
use super::writer::{Ack, PreparedFor, Writer};
use super::{Counts, PipelineError, stage_panic};
use crate::config::DeliveryConfig;
use crate::error::{ServiceError, with_timeout};
use crate::sink::Sink;
use crate::sink::dead_letter::DeadLetterSink;
use crate::source::Source;
use crate::telemetry::events::{BatchCommitted, BatchPolled, EndsConnected, PolledNothing};
use crate::telemetry::{PipelineTelemetry, Stage};
use crate::wasm::TransformChain;

/// The pipeline's core, independent of which servers are at either end.
pub async fn drive<S, K, D>(
    mut source: S,
    chains: Vec<TransformChain>,
    mut writer: Writer<K, D>,
    delivery: DeliveryConfig,
    shutdown: CancellationToken,
) -> Result<Counts, PipelineError>
where
    S: Source,
    K: Sink + 'static,
    D: DeadLetterSink + 'static,
{
    let telemetry = writer.telemetry.clone();
    if !connect(&mut source, &mut writer.sink, &delivery, &telemetry, &shutdown).await? {
        source.close().await;
        return Ok(Counts::default());
    }
    let lanes = writer.sink.more_lanes();
    let window = delivery.window(chains.len(), lanes.len() + 1);
    let (to_transform, transform_inputs) = Dispatch::new(chains.len());
    let (to_writer, writer_input) = mpsc::channel(window + chains.len());
    let (ack_sender, mut acks) = mpsc::channel(window + 1);
    // Stops the writer's retries on shutdown or when the driver gives up.
    let stop = shutdown.child_token();
    let transformers =
        start_transform_instances(chains, &writer.sink, transform_inputs, to_writer, &delivery, &stop, &telemetry);
    let writing = tokio::spawn(
        stage_panic::catch_async(writer.run(lanes, writer_input, ack_sender, stop.clone())).in_current_span(),
    );

    let mut driver = Driver {
        source: &mut source,
        backoff: Backoff::new(&delivery, &telemetry),
        delivery: delivery.clone(),
        telemetry: telemetry.clone(),
        counts: Counts::default(),
        polled: 0,
        in_flight: 0,
        unstored: Unstored::default(),
    };
    let outcome = stage_panic::catch_async(driver.run(&to_transform, &mut acks, window, &shutdown)).await;
    let (counts, uncommitted) = (driver.counts, driver.uncommitted());

    stop.cancel();
    drop(to_transform);
    drop(acks);
    // A stage that panicked is why the others stopped: its panic is the
    // pipeline's error, whatever the driver made of the closed channels.
    // (A join error is a cancelled task; it has nothing to report.)
    let written = writing.await.unwrap_or(Ok(()));
    // The instances report their errors and panics through the writer,
    // which hands them to the driver: nothing more to learn from them here.
    for transformer in transformers {
        let _ = transformer.await;
    }
    source.close().await;
    let outcome = match (outcome, written) {
        (Err(panic), _) => Err(PipelineError::StagePanicked { stage: "poll and commit", panic }),
        (_, Err(panic)) => Err(PipelineError::StagePanicked { stage: "write", panic }),
        (Ok(outcome), Ok(())) => outcome,
    };
    match outcome {
        Ok(()) => Ok(counts),
        // Shutdown cut a retry short: nothing is lost, only left uncommitted.
        Err(PipelineError::Interrupted) if shutdown.is_cancelled() => {
            tracing::warn!(
                batches = uncommitted,
                "stopped with batches not yet committed; they are replayed on the next start"
            );
            Ok(counts)
        }
        Err(error) => Err(error),
    }
}

/// Starts one thread per transform instance, each taking the batches
/// handed to it. An instance that stops (its chain's error, or a panic)
/// says so through `output`, so the writer stops the pipeline at once.
fn start_transform_instances<C: Send + 'static, K: Sink>(
    chains: Vec<TransformChain>,
    sink: &K,
    inputs: Vec<InstanceInput<C>>,
    output: transform_stage::Output<C, PreparedFor<K>>,
    delivery: &DeliveryConfig,
    stop: &CancellationToken,
    telemetry: &PipelineTelemetry,
) -> Vec<tokio::task::JoinHandle<()>> {
    let broken_instances = Arc::new(AtomicUsize::new(0));
    chains
        .into_iter()
        .zip(inputs)
        .map(|(chain, input)| {
            let instance = transform_stage::Instance { chain, input };
            let (broken_instances, output, preparer) = (broken_instances.clone(), output.clone(), sink.preparer());
            let (delivery, stop, telemetry) = (delivery.clone(), stop.clone(), telemetry.clone());
            // The stages log within the pipeline's span, wherever they run.
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _span = span.enter();
                let ran = stage_panic::catch(|| {
                    transform_stage::run(instance, preparer, &broken_instances, &output, &delivery, &stop, &telemetry)
                });
                let error = match ran {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => error,
                    Err(panic) => PipelineError::StagePanicked { stage: "transform", panic },
                };
                let _ = output.blocking_send(Err(error));
            })
        })
        .collect()
}

/// Reaches both ends, retrying transient failures, so the pipeline counts
/// as running only once it can move data. False when shutdown came first.
async fn connect<S: Source, K: Sink>(
    source: &mut S,
    sink: &mut K,
    delivery: &DeliveryConfig,
    telemetry: &PipelineTelemetry,
    shutdown: &CancellationToken,
) -> Result<bool, PipelineError> {
    let mut backoff = Backoff::new(delivery, telemetry);
    loop {
        let limit = delivery.call_timeout;
        let connected = async {
            with_timeout(limit, "connecting to the source", source.connect()).await?;
            with_timeout(limit, "connecting to the sink", sink.connect()).await
        };
        let error: ServiceError = tokio::select! {
            connected = connected => match connected {
                Ok(()) => break,
                Err(error) => error,
            },
            () = shutdown.cancelled() => return Ok(false),
        };
        if !error.transient {
            return Err(error.into());
        }
        if backoff.wait(Stage::Connect, &error, shutdown).await.is_err() {
            return Ok(false);
        }
    }
    EndsConnected.emit(telemetry);
    Ok(true)
}

/// Polls while the window has room, and commits written batches' positions.
struct Driver<'s, S: Source> {
    source: &'s mut S,
    backoff: Backoff,
    delivery: DeliveryConfig,
    telemetry: PipelineTelemetry,
    counts: Counts,
    /// Batches polled so far: the next one's number.
    polled: u64,
    /// Batches polled and not yet written: the window bounds these.
    in_flight: usize,
    /// Batches written whose positions wait to be committed together.
    unstored: Unstored<S::Checkpoint>,
}

impl<S: Source> Driver<'_, S> {
    /// Batches a stop now would leave to be replayed.
    fn uncommitted(&self) -> usize {
        self.in_flight + self.unstored.batches()
    }

    /// Moves batches until shutdown or an error; then commits what was
    /// written either way, so a restart replays only what was not.
    async fn run(
        &mut self,
        to_transform: &Dispatch<S::Checkpoint>,
        acks: &mut mpsc::Receiver<Result<Ack<S::Checkpoint>, PipelineError>>,
        window: usize,
        shutdown: &CancellationToken,
    ) -> Result<(), PipelineError> {
        let moved = self.move_batches(to_transform, acks, window, shutdown).await;
        let committed = self.commit_written(shutdown).await;
        moved.and(committed)
    }

    async fn move_batches(
        &mut self,
        to_transform: &Dispatch<S::Checkpoint>,
        acks: &mut mpsc::Receiver<Result<Ack<S::Checkpoint>, PipelineError>>,
        window: usize,
        shutdown: &CancellationToken,
    ) -> Result<(), PipelineError> {
        let interval = self.delivery.commit_interval;
        loop {
            let stopping = shutdown.is_cancelled();
            if stopping && self.in_flight == 0 {
                return Ok(());
            }
            if self.unstored.is_due(interval) {
                self.commit_written(shutdown).await?;
            }
            if !stopping && self.in_flight < window {
                let started = Instant::now();
                match with_timeout(self.delivery.call_timeout, "polling the source", self.source.poll()).await {
                    Ok(Some(polled)) => {
                        self.backoff.reset();
                        let records = polled.batch.records.len();
                        let bytes = polled.batch.records.iter().map(|record| record.payload.len() as u64).sum();
                        let elapsed = started.elapsed();
                        let numbered = Sequenced { number: self.polled, item: polled };
                        to_transform.send(numbered).map_err(|_| PipelineError::StageLost)?;
                        self.polled += 1;
                        self.in_flight += 1;
                        BatchPolled { records, bytes, elapsed, in_flight: self.in_flight }.emit(&self.telemetry);
                        continue;
                    }
                    Ok(None) => {
                        // An answer with nothing in it still ends a poll failure.
                        PolledNothing.emit(&self.telemetry);
                        // Idle, holding positions back gains nothing.
                        self.commit_written(shutdown).await?;
                        let pause = self.source.idle_pause();
                        tokio::select! {
                            ack = acks.recv() => self.written(ack, acks, shutdown)?,
                            () = tokio::time::sleep(pause) => {}
                            () = shutdown.cancelled() => {}
                        }
                        continue;
                    }
                    Err(error) if error.transient => {
                        // Written batches wait in their channel meanwhile;
                        // an interrupted wait ends the loop at the next turn.
                        let _ = self.backoff.wait(Stage::Poll, &error, shutdown).await;
                        continue;
                    }
                    Err(error) => {
                        // What was read before it is written and committed
                        // first, as on shutdown: the pipeline stops at the
                        // position it cannot read.
                        self.finish_in_flight(acks, shutdown).await?;
                        return Err(error.into());
                    }
                }
            }
            let due = self.unstored.due_at(interval);
            let until_due = async {
                match due {
                    Some(due) => tokio::time::sleep_until(due.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ack = acks.recv() => self.written(ack, acks, shutdown)?,
                () = until_due => {}
                () = shutdown.cancelled(), if !stopping => {}
            }
        }
    }

    /// Waits until every batch polled is written (or one fails).
    async fn finish_in_flight(
        &mut self,
        acks: &mut mpsc::Receiver<Result<Ack<S::Checkpoint>, PipelineError>>,
        shutdown: &CancellationToken,
    ) -> Result<(), PipelineError> {
        while self.in_flight > 0 {
            let ack = acks.recv().await;
            self.written(ack, acks, shutdown)?;
        }
        Ok(())
    }

    /// Takes a written batch, and any written since, off the window; their
    /// positions wait to be committed together.
    fn written(
        &mut self,
        ack: Option<Result<Ack<S::Checkpoint>, PipelineError>>,
        acks: &mut mpsc::Receiver<Result<Ack<S::Checkpoint>, PipelineError>>,
        shutdown: &CancellationToken,
    ) -> Result<(), PipelineError> {
        let mut next = ack;
        loop {
            match next {
                Some(Ok(ack)) => {
                    self.in_flight -= 1;
                    self.unstored.hold(ack, S::covers);
                }
                // The batches written before a failure are still committed
                // (`run` does so on the way out).
                Some(Err(error)) => return Err(error),
                // The writer stopped: on shutdown that is a retry cut short.
                None if shutdown.is_cancelled() => return Err(PipelineError::Interrupted),
                None => return Err(PipelineError::StageLost),
            }
            match acks.try_recv() {
                Ok(ack) => next = Some(ack),
                Err(_) => return Ok(()),
            }
        }
    }

    /// Commits every position held, one round trip per partition however
    /// many batches it covers (one per batch is what bounds a fast sink).
    /// Acks arrive in poll order, so no later position needs committing
    /// first.
    async fn commit_written(&mut self, shutdown: &CancellationToken) -> Result<(), PipelineError> {
        let positions = self.unstored.take();
        if positions.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        for position in &positions {
            self.commit(&position.checkpoint, shutdown).await?;
        }
        // Each batch is counted, with its share of the commit time.
        let batches: u64 = positions.iter().map(|position| position.counts.batches).sum();
        let elapsed = started.elapsed() / batches.max(1) as u32;
        for position in positions {
            self.counts.add(position.counts);
            for _ in 0..position.counts.batches {
                BatchCommitted { elapsed, in_flight: self.in_flight }.emit(&self.telemetry);
            }
        }
        Ok(())
    }

    /// Stores one checkpoint, retrying transient failures.
    async fn commit(&mut self, checkpoint: &S::Checkpoint, shutdown: &CancellationToken) -> Result<(), PipelineError> {
        let mut backoff = Backoff::new(&self.delivery, &self.telemetry);
        loop {
            let commit = self.source.commit(checkpoint.clone());
            match with_timeout(self.delivery.call_timeout, "committing to the source", commit).await {
                Ok(()) => break,
                Err(error) if error.transient => {
                    if backoff.wait(Stage::Commit, &error, shutdown).await.is_err() {
                        // Shutting down with the source unreachable: the
                        // batch stays uncommitted and is replayed next start.
                        return Err(PipelineError::Interrupted);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        tracing::debug!(?checkpoint, "committed");
        Ok(())
    }
}
