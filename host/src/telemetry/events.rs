//! Everything that happens in a pipeline that an operator can see, one
//! struct per event. Stages build an event and `emit` it into the
//! pipeline's handle; `emit` writes the log line (if the event has one),
//! counts the metrics and updates the status, together.
//!
//! A pipeline's events are emitted within its span, which names it in
//! every log line; the reload events, emitted by the runner outside it,
//! name the pipeline themselves.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::handle::{DEAD_LETTER_STAGES, PipelineTelemetry};
use super::status::{ChangeStreamProgress, ErrorNote, PartitionProgress, Position, State, Status, TransformInfo};
use crate::error::{ServiceError, error_chain};
use crate::record::{Batch, RecordResult, describe_position};
use crate::sink::dead_letter::DeadLetter;

/// A part of the pipeline that takes time or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Reaching the source and the sink before any data moves.
    Connect,
    Poll,
    Transform,
    Write,
    DeadLetter,
    Commit,
}

impl Stage {
    pub const ALL: [Stage; 6] =
        [Stage::Connect, Stage::Poll, Stage::Transform, Stage::Write, Stage::DeadLetter, Stage::Commit];
    /// The stages with a duration histogram, in its order.
    pub const TIMED: [Stage; 4] = [Stage::Poll, Stage::Transform, Stage::Write, Stage::Commit];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Poll => "poll",
            Stage::Transform => "transform",
            Stage::Write => "write",
            Stage::DeadLetter => "dead_letter",
            Stage::Commit => "commit",
        }
    }

    fn timed_index(self) -> Option<usize> {
        Self::TIMED.iter().position(|stage| *stage == self)
    }
}

/// The `write` label values of the MongoDB documents counter.
pub const WRITE_KINDS: [&str; 4] = ["insert", "upsert", "replace", "delete"];

/// Moves `status` to the state its flags say, unless it has ended.
fn settle(telemetry: &PipelineTelemetry, status: &mut Status) {
    let state = match status.state {
        State::Failed | State::Stopped => return,
        _ if !status.failing.is_empty() => State::Retrying,
        _ if !status.connected => State::Starting,
        _ => State::Running,
    };
    set_state(telemetry, status, state);
}

fn set_state(telemetry: &PipelineTelemetry, status: &mut Status, state: State) {
    if status.state != state {
        status.state = state;
        status.since = SystemTime::now();
        telemetry.set_state_gauges(state);
    }
}

/// Clears `stage`'s failure once it succeeds again.
fn recovered(telemetry: &PipelineTelemetry, stage: Stage) {
    let mut status = telemetry.lock_status();
    if status.failing.remove(stage.as_str()).is_some() {
        settle(telemetry, &mut status);
    }
}

fn note(message: String) -> ErrorNote {
    ErrorNote { message, at: SystemTime::now() }
}

/// A pipeline (or a new version of it) is starting: its transforms are
/// loaded and configured, its ends not yet reached.
pub struct PipelineStarting<'a> {
    pub transforms: &'a [TransformInfo],
}

impl PipelineStarting<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        status.transforms = self.transforms.to_vec();
        status.connected = false;
        status.failing.clear();
        // A restarted pipeline starts again, whatever it was.
        status.state = State::Stopped;
        set_state(telemetry, &mut status, State::Starting);
        drop(status);
        let transforms: Vec<&str> = self.transforms.iter().map(|transform| transform.name.as_str()).collect();
        tracing::info!(?transforms, "pipeline starting");
    }
}

/// Both ends answered: data can move.
pub struct EndsConnected;

impl EndsConnected {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        status.connected = true;
        status.failing.remove(Stage::Connect.as_str());
        if let Some(since) = status.reload.draining_since.take() {
            status.reload.last_pause_seconds = Some(since.elapsed().as_secs_f64());
        }
        settle(telemetry, &mut status);
        drop(status);
        tracing::info!("pipeline running: connected to its source and sink");
    }
}

/// A transient failure, to be retried after `delay`.
pub struct RetryScheduled<'a> {
    pub stage: Stage,
    pub error: &'a ServiceError,
    pub attempt: u32,
    pub delay: Duration,
}

impl RetryScheduled<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let message = error_chain(self.error);
        tracing::warn!(
            stage = self.stage.as_str(),
            attempt = self.attempt,
            retry_in = ?self.delay,
            "{message}"
        );
        telemetry.retries(self.stage, self.error.kind).inc();
        let mut status = telemetry.lock_status();
        status.failing.insert(self.stage.as_str(), note(message));
        settle(telemetry, &mut status);
    }
}

/// The source handed out a batch.
pub struct BatchPolled {
    pub records: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Batches in flight now, this one included.
    pub in_flight: usize,
}

impl BatchPolled {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let handles = &telemetry.inner.handles;
        handles.records_read.inc_by(self.records as u64);
        handles.read_bytes.inc_by(self.bytes);
        handles.in_flight.set(self.in_flight as i64);
        observe(telemetry, Stage::Poll, self.elapsed);
        recovered(telemetry, Stage::Poll);
    }
}

/// A batch went through the transform chain and was prepared for the sink.
pub struct BatchTransformed {
    pub elapsed: Duration,
}

impl BatchTransformed {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        observe(telemetry, Stage::Transform, self.elapsed);
    }
}

/// A batch was written, and what could not be written was dead-lettered.
pub struct BatchWritten<'a> {
    pub batch: &'a Batch,
    pub results: &'a [RecordResult],
    pub letters: &'a [DeadLetter],
    pub elapsed: Duration,
}

impl BatchWritten<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let handles = &telemetry.inner.handles;
        // A record the sink refused is dead-lettered: its outputs are not
        // written. (Letters come sorted by input.)
        let refused: Vec<usize> =
            self.letters.iter().filter(|letter| letter.stage == "sink").map(|letter| letter.input).collect();
        let (mut emitted, mut dropped, mut outputs, mut bytes) = (0, 0, 0, 0);
        for (input, (record, result)) in self.batch.records.iter().zip(self.results).enumerate() {
            match result {
                RecordResult::Dropped => dropped += 1,
                RecordResult::Failed(_) => {}
                RecordResult::Unchanged | RecordResult::Emitted(_) => emitted += 1,
            }
            if refused.binary_search(&input).is_ok() {
                continue;
            }
            for output in result.outputs(record) {
                outputs += 1;
                bytes += output.payload.len() as u64;
            }
        }
        let (refused, failed) = (refused.len() as u64, (self.letters.len() - refused.len()) as u64);
        handles.records_emitted.inc_by(emitted);
        handles.records_dropped.inc_by(dropped);
        handles.outputs_written.inc_by(outputs);
        handles.written_bytes.inc_by(bytes);
        handles.dead_lettered[0].inc_by(failed);
        handles.dead_lettered[1].inc_by(refused);
        debug_assert_eq!(DEAD_LETTER_STAGES, ["transform", "sink"]);
        observe(telemetry, Stage::Write, self.elapsed);
        for letter in self.letters {
            let position = describe_position(&self.batch.source, &self.batch.records[letter.input].origin);
            tracing::warn!(
                %position,
                stage = %letter.stage,
                reason = %letter.reason,
                "record sent to the dead-letter topic"
            );
        }
        recovered(telemetry, Stage::Write);
        recovered(telemetry, Stage::DeadLetter);
    }
}

/// A written batch's position was committed to the source.
pub struct BatchCommitted {
    pub elapsed: Duration,
    /// Batches in flight now, this one no longer.
    pub in_flight: usize,
}

impl BatchCommitted {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let handles = &telemetry.inner.handles;
        handles.batches.inc();
        handles.in_flight.set(self.in_flight as i64);
        observe(telemetry, Stage::Commit, self.elapsed);
        recovered(telemetry, Stage::Commit);
    }
}

/// The pipeline ended: on request, or with the error that stopped it.
pub struct PipelineStopped<'a> {
    pub error: Option<&'a str>,
}

impl PipelineStopped<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        status.failing.clear();
        status.connected = false;
        telemetry.inner.handles.in_flight.set(0);
        match self.error {
            None => {
                set_state(telemetry, &mut status, State::Stopped);
                drop(status);
                tracing::info!("pipeline stopped");
            }
            Some(error) => {
                status.last_error = Some(note(error.to_owned()));
                set_state(telemetry, &mut status, State::Failed);
                drop(status);
                tracing::error!("pipeline failed: {error}");
            }
        }
    }
}

/// The Iggy source joined its group and owns (or shares) these partitions.
pub struct PartitionsAssigned<'a> {
    pub partitions: &'a [u32],
}

impl PartitionsAssigned<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        let known = match std::mem::take(&mut status.position) {
            Position::Iggy(known) => known,
            _ => BTreeMap::new(),
        };
        let partitions = self.partitions.iter().map(|&id| (id, known.get(&id).cloned().unwrap_or_default())).collect();
        status.position = Position::Iggy(partitions);
    }
}

/// The Iggy source committed `offset` (the last message written) of
/// `partition`.
pub struct OffsetCommitted {
    pub partition: u32,
    pub offset: u64,
}

impl OffsetCommitted {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        if let Position::Iggy(partitions) = &mut status.position {
            let progress = partitions.entry(self.partition).or_default();
            progress.committed_offset = Some(self.offset);
            if let Some(head) = progress.head_offset {
                progress.lag = Some(lag(head, Some(self.offset)));
            }
        }
    }
}

/// What the lag probe read of each partition: its last offset and the
/// group's committed one (`None`: nothing committed yet).
pub struct PartitionHeads<'a> {
    pub partitions: &'a [PartitionHead],
}

/// One partition, as the lag probe read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionHead {
    pub partition: u32,
    /// The offset of the last message; `None` for an empty partition.
    pub head: Option<u64>,
    pub committed: Option<u64>,
}

impl PartitionHeads<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        let mut partitions = match std::mem::take(&mut status.position) {
            Position::Iggy(partitions) => partitions,
            _ => BTreeMap::new(),
        };
        for read in self.partitions {
            let series = telemetry.partition(read.partition);
            let lag = read.head.map_or(0, |head| lag(head, read.committed));
            series.lag.set(lag as i64);
            if let Some(committed) = read.committed {
                series.committed.set(committed as i64);
            }
            let progress = partitions.entry(read.partition).or_insert_with(PartitionProgress::default);
            progress.head_offset = read.head;
            progress.committed_offset = read.committed.or(progress.committed_offset);
            progress.lag = Some(lag);
        }
        status.position = Position::Iggy(partitions);
    }
}

/// Messages after `committed` up to and including `head`.
fn lag(head: u64, committed: Option<u64>) -> u64 {
    match committed {
        Some(committed) => head.saturating_sub(committed),
        None => head + 1,
    }
}

/// The change stream answered a poll with `events` events, or with none:
/// it has nothing waiting (caught up).
pub struct ChangesPolled {
    pub events: usize,
}

impl ChangesPolled {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        let progress = change_stream(&mut status);
        progress.caught_up = self.events == 0;
        if self.events > 0 {
            progress.last_event_at = Some(SystemTime::now());
        }
    }
}

/// A change stream position was committed: everything up to it is in the
/// destination. `resume_time` is its cluster time (seconds), if known;
/// `last_change` the cluster time of the last change it covers.
pub struct ChangesCommitted {
    pub resume_time: Option<u32>,
    pub last_change: Option<u32>,
}

impl ChangesCommitted {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        let progress = change_stream(&mut status);
        if let Some(time) = self.resume_time.or(self.last_change) {
            progress.resume_time = Some(time);
        }
        if let Some(time) = self.last_change {
            progress.last_change = Some((time, SystemTime::now()));
        }
    }
}

/// The oplog's oldest entry, as the headroom probe read it (seconds of
/// cluster time).
pub struct OplogRead {
    pub oldest: u32,
}

impl OplogRead {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        change_stream(&mut telemetry.lock_status()).oplog_oldest = Some(self.oldest);
    }
}

fn change_stream(status: &mut Status) -> &mut ChangeStreamProgress {
    if !matches!(status.position, Position::ChangeStream(_)) {
        status.position = Position::ChangeStream(ChangeStreamProgress::default());
    }
    match &mut status.position {
        Position::ChangeStream(progress) => progress,
        _ => unreachable!("set above"),
    }
}

/// What one batch's MongoDB writes did, gathered while writing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MongoWrites {
    /// How long each write command took.
    pub commands: Vec<Duration>,
    /// Documents written, by collection and write kind (one of
    /// [`WRITE_KINDS`]).
    pub documents: BTreeMap<(String, &'static str), u64>,
    /// Inserts MongoDB already held, by collection.
    pub replays: BTreeMap<String, u64>,
}

impl MongoWrites {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        for elapsed in &self.commands {
            telemetry.inner.handles.mongodb_write.observe(elapsed.as_secs_f64());
        }
        for ((collection, write), count) in &self.documents {
            telemetry.collection(collection, write).0.inc_by(*count);
        }
        for (collection, count) in &self.replays {
            telemetry.collection(collection, "insert").1.inc_by(*count);
        }
    }
}

/// A reload found the pipeline's new version invalid; the old one runs on.
pub struct ReloadRefused<'a> {
    pub error: &'a str,
}

impl ReloadRefused<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.inner.handles.reload_failures.inc();
        telemetry.lock_status().reload.refused = Some(note(self.error.to_owned()));
        tracing::error!(pipeline = %telemetry.name(), "reload refused, the running version goes on: {}", self.error);
    }
}

/// A reload found the pipeline as it runs: a reload refused before (say,
/// of a file saved half-written) is over.
pub struct ReloadUnchanged;

impl ReloadUnchanged {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.lock_status().reload.refused = None;
    }
}

/// A reload drained the pipeline's old version and swaps in the new one,
/// whose transforms are already loaded; the swap is over when the new
/// version is running (see [`EndsConnected`]).
pub struct ReloadSwapped {
    /// When the old version began to drain.
    pub draining_since: std::time::Instant,
    /// How long the old version took to finish its batches in flight.
    pub drained_in: Duration,
}

impl ReloadSwapped {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.inner.handles.reloads.inc();
        let mut status = telemetry.lock_status();
        status.reload.swaps += 1;
        status.reload.last_swap = Some(SystemTime::now());
        status.reload.last_drain_seconds = Some(self.drained_in.as_secs_f64());
        status.reload.draining_since = Some(self.draining_since);
        status.reload.refused = None;
        drop(status);
        tracing::info!(pipeline = %telemetry.name(), drained_in = ?self.drained_in, "reloaded: the new version resumes from the committed position");
    }
}

fn observe(telemetry: &PipelineTelemetry, stage: Stage, elapsed: Duration) {
    if let Some(index) = stage.timed_index() {
        telemetry.inner.handles.stage_duration[index].observe(elapsed.as_secs_f64());
    }
}
