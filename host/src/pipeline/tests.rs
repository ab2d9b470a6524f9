//! The pipeline's promises, checked behind the `Source`/`Sink` seams with
//! in-memory stand-ins: commit only after write, in order; retry transient
//! failures; never skip a record silently.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::writer::Writer;
use super::{Counts, PipelineError, StagePanic, drive};
use crate::config::DeliveryConfig;
use crate::error::ServiceError;
use crate::record::DeadLetter;
use crate::record::RecordResult;
use crate::record::{Batch, BatchSource, Encoding, Origin, Record};
use crate::sink::dead_letter::DeadLetterSink;
use crate::sink::{Prepare, Rejection, Sink};
use crate::source::{Polled, Source};
use crate::telemetry::{PipelineTelemetry, State};
use crate::wasm::TransformChain;

/// What happened, in order, across all stand-ins.
pub(super) type Journal = Arc<Mutex<Vec<String>>>;

pub(super) fn note(journal: &Journal, event: impl Into<String>) {
    journal.lock().unwrap().push(event.into());
}

pub(super) fn events(journal: &Journal) -> Vec<String> {
    journal.lock().unwrap().clone()
}

/// Batches of single-line payloads; checkpoint = batch number.
pub(super) struct ScriptedSource {
    batches: VecDeque<Batch>,
    polled: u64,
    /// Polling fails this many times first.
    poll_failures: usize,
    /// Whether a later checkpoint covers earlier ones (a real source's
    /// offsets do); off, every batch is committed on its own.
    coalesce: bool,
    /// The first commit waits until the journal holds this event.
    first_commit_after: Option<&'static str>,
    /// Past its batches, it makes up more until something is committed:
    /// a source that never goes idle until then.
    busy_until_committed: bool,
    committed_any: bool,
    /// Notes "drained" the first time it has nothing to give.
    note_drained: bool,
    /// Past its batches, polling fails for good (a partition it cannot read).
    pub(super) fails_when_drained: bool,
    pub(super) journal: Journal,
}

pub(super) fn batch_of(payloads: &[&str]) -> Batch {
    let records = payloads
        .iter()
        .enumerate()
        .map(|(line, payload)| Record {
            payload: payload.as_bytes().to_vec(),
            encoding: Encoding::Text,
            key: None,
            headers: None,
            timestamp: 0,
            origin: Origin::File(line as u64 + 1),
        })
        .collect();
    Batch { source: BatchSource::File, records }
}

fn one_line_batch(payload: &str) -> Batch {
    batch_of(&[payload])
}

impl ScriptedSource {
    pub(super) fn new(payloads: &[&[&str]], journal: &Journal) -> Self {
        let batches = payloads.iter().map(|batch| batch_of(batch)).collect();
        Self {
            batches,
            polled: 0,
            poll_failures: 0,
            coalesce: false,
            first_commit_after: None,
            busy_until_committed: false,
            committed_any: false,
            note_drained: false,
            fails_when_drained: false,
            journal: journal.clone(),
        }
    }
}

/// The stand-in's checkpoint: a batch number, and whether it covers the
/// numbers before it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seq {
    number: u64,
    coalesce: bool,
}

impl Source for ScriptedSource {
    type Checkpoint = Seq;

    async fn connect(&mut self) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn poll(&mut self) -> Result<Option<Polled<Seq>>, ServiceError> {
        if self.poll_failures > 0 {
            self.poll_failures -= 1;
            note(&self.journal, "poll failed");
            return Err(ServiceError::not_yet("polling", "the server restarts"));
        }
        if self.batches.is_empty() && self.busy_until_committed && !self.committed_any {
            self.batches.push_back(one_line_batch("more"));
        }
        if self.batches.is_empty() && self.fails_when_drained {
            return Err(ServiceError::fatal("polling", "the partition cannot be read"));
        }
        let Some(batch) = self.batches.pop_front() else {
            if self.note_drained {
                self.note_drained = false;
                note(&self.journal, "drained");
            }
            return Ok(None);
        };
        self.polled += 1;
        Ok(Some(Polled { batch, checkpoint: Seq { number: self.polled, coalesce: self.coalesce } }))
    }

    async fn commit(&mut self, checkpoint: Seq) -> Result<(), ServiceError> {
        if let Some(event) = self.first_commit_after.take() {
            while !events(&self.journal).iter().any(|e| e == event) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        note(&self.journal, format!("commit {}", checkpoint.number));
        self.committed_any = true;
        Ok(())
    }

    fn covers(later: &Seq, earlier: &Seq) -> bool {
        later.coalesce && later.number >= earlier.number
    }

    fn idle_pause(&self) -> Duration {
        Duration::from_millis(1)
    }

    async fn close(&mut self) {}
}

/// Fails its first `transient_failures` writes, then writes, rejecting
/// payloads that start with "bad"; `permanent` fails every write for good.
/// A batch holding the payload `panic_writing` (or `panic_preparing`)
/// panics the write (or the preparation on the transform thread).
struct ScriptedSink {
    transient_failures: usize,
    /// Connecting fails this many times first.
    unreachable_for: usize,
    permanent: bool,
    panic_writing: Option<&'static str>,
    panic_preparing: Option<&'static str>,
    journal: Journal,
}

impl ScriptedSink {
    fn new(journal: &Journal) -> Self {
        Self {
            transient_failures: 0,
            unreachable_for: 0,
            permanent: false,
            panic_writing: None,
            panic_preparing: None,
            journal: journal.clone(),
        }
    }
}

fn holds(batch: &Batch, payload: Option<&str>) -> bool {
    payload.is_some_and(|payload| batch.records.iter().any(|record| record.payload == payload.as_bytes()))
}

impl Sink for ScriptedSink {
    type Prepare = NothingToPrepare;

    fn preparer(&self) -> NothingToPrepare {
        NothingToPrepare { panic_on: self.panic_preparing }
    }

    async fn connect(&mut self) -> Result<(), ServiceError> {
        if self.unreachable_for > 0 {
            self.unreachable_for -= 1;
            note(&self.journal, "connect failed");
            return Err(ServiceError::mongo_transient("reaching the sink", "connection refused"));
        }
        note(&self.journal, "connected");
        Ok(())
    }

    async fn write(&mut self, batch: &Batch, results: &[RecordResult], _: &()) -> Result<Vec<Rejection>, ServiceError> {
        if holds(batch, self.panic_writing) {
            let partitions: Vec<u32> = Vec::new();
            let _ = 7 % std::hint::black_box(partitions.len());
        }
        if self.permanent {
            return Err(ServiceError::fatal("writing", "the collection is read-only"));
        }
        if self.transient_failures > 0 {
            self.transient_failures -= 1;
            note(&self.journal, "write failed");
            return Err(ServiceError::mongo_transient("writing", "no primary"));
        }
        let mut rejections = Vec::new();
        for (input, (record, result)) in batch.records.iter().zip(results).enumerate() {
            let payload = String::from_utf8_lossy(&record.payload).into_owned();
            if payload.starts_with("bad") {
                rejections.push(Rejection { input, reason: format!("{payload} refused") });
            } else if result.output_count() > 0 {
                note(&self.journal, format!("write {payload}"));
            }
        }
        Ok(rejections)
    }
}

struct NothingToPrepare {
    panic_on: Option<&'static str>,
}

impl Prepare for NothingToPrepare {
    type Prepared = ();

    fn prepare(&self, batch: &Batch, _: &[RecordResult]) {
        assert!(!holds(batch, self.panic_on), "cannot prepare {:?}", self.panic_on);
    }
}

struct MemoryDeadLetters {
    journal: Journal,
}

impl DeadLetterSink for MemoryDeadLetters {
    async fn send(&mut self, pipeline: &str, batch: &Batch, letters: &[DeadLetter]) -> Result<(), ServiceError> {
        for letter in letters {
            let payload = String::from_utf8_lossy(&batch.records[letter.input].payload);
            note(
                &self.journal,
                format!("dead letter {payload} from {pipeline} at {}: {}", letter.stage, letter.reason),
            );
        }
        Ok(())
    }
}

pub(super) fn delivery() -> DeliveryConfig {
    DeliveryConfig {
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        call_timeout: Duration::from_secs(5),
        ..DeliveryConfig::default()
    }
}

/// Runs the pipeline until `done` holds for the journal (or it stops).
async fn run(
    source: ScriptedSource,
    sink: ScriptedSink,
    dead_letters: Option<MemoryDeadLetters>,
    done: impl Fn(&[String]) -> bool,
) -> (Result<Counts, PipelineError>, Vec<String>) {
    let (outcome, events, _) = run_observed(source, sink, dead_letters, done).await;
    (outcome, events)
}

/// As `run`, also giving the pipeline's telemetry.
async fn run_observed(
    source: ScriptedSource,
    sink: ScriptedSink,
    dead_letters: Option<MemoryDeadLetters>,
    done: impl Fn(&[String]) -> bool,
) -> (Result<Counts, PipelineError>, Vec<String>, PipelineTelemetry) {
    run_until(source, sink, dead_letters, |events, _| done(events)).await
}

/// Runs the pipeline until `done` holds for the journal and the telemetry
/// (or it stops).
async fn run_until(
    source: ScriptedSource,
    sink: ScriptedSink,
    dead_letters: Option<MemoryDeadLetters>,
    done: impl Fn(&[String], &PipelineTelemetry) -> bool,
) -> (Result<Counts, PipelineError>, Vec<String>, PipelineTelemetry) {
    run_with(source, sink, dead_letters, delivery(), done).await
}

/// As `run_until`, with these delivery settings.
async fn run_with(
    source: ScriptedSource,
    sink: ScriptedSink,
    dead_letters: Option<MemoryDeadLetters>,
    delivery: DeliveryConfig,
    done: impl Fn(&[String], &PipelineTelemetry) -> bool,
) -> (Result<Counts, PipelineError>, Vec<String>, PipelineTelemetry) {
    let journal = source.journal.clone();
    let shutdown = CancellationToken::new();
    let telemetry = PipelineTelemetry::detached("p");
    let writer = Writer::new(sink, dead_letters, &delivery, &telemetry);
    let task = tokio::spawn(drive(source, vec![TransformChain::new(Vec::new())], writer, delivery, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&events(&journal), &telemetry) && !task.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "stuck: {:?}", events(&journal));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shutdown.cancel();
    (task.await.unwrap(), events(&journal), telemetry)
}

pub(super) fn committed(events: &[String], checkpoint: u64) -> bool {
    events.iter().any(|event| event == &format!("commit {checkpoint}"))
}

#[tokio::test]
async fn given_transient_write_failures_then_retries_and_commits_each_batch_after_its_write_in_order() {
    let journal = Journal::default();
    let source = ScriptedSource::new(&[&["a"], &["b", "c"], &["d"]], &journal);
    let sink = ScriptedSink { transient_failures: 2, ..ScriptedSink::new(&journal) };
    let (outcome, events) = run(source, sink, None, |events| committed(events, 3)).await;
    let counts = outcome.unwrap();
    assert_eq!((counts.batches, counts.records, counts.outputs), (3, 4, 4));
    let at = |event: &str| events.iter().position(|e| e == event).unwrap_or_else(|| panic!("no {event}: {events:?}"));
    assert!(
        at("write a") < at("commit 1") && at("write c") < at("commit 2") && at("write d") < at("commit 3"),
        "{events:?}"
    );
    assert!(at("commit 1") < at("commit 2") && at("commit 2") < at("commit 3"), "{events:?}");
    assert_eq!(events.iter().filter(|event| event.starts_with("write ") && *event != "write failed").count(), 4);
}

#[tokio::test]
async fn given_batches_acknowledged_together_then_only_the_last_is_committed_and_all_are_counted() {
    let journal = Journal::default();
    let mut source = ScriptedSource::new(&[&["a"], &["b"], &["c"], &["d"]], &journal);
    // While the first commit is under way, the other three are written.
    (source.coalesce, source.first_commit_after) = (true, Some("write d"));
    let sink = ScriptedSink::new(&journal);
    let delivery = DeliveryConfig { max_in_flight: Some(8), ..delivery() };
    let (outcome, events, _) = run_with(source, sink, None, delivery, |events, _| committed(events, 4)).await;
    assert_eq!(outcome.unwrap().batches, 4);
    let commits: Vec<&String> = events.iter().filter(|event| event.starts_with("commit")).collect();
    // The first ack may already have the others behind it, or not.
    assert!(commits == ["commit 1", "commit 4"] || commits == ["commit 4"], "{events:?}");
}

#[tokio::test]
async fn given_a_long_commit_interval_then_positions_wait_for_the_source_to_go_idle() {
    let journal = Journal::default();
    let payloads: Vec<[&str; 1]> = (0..50).map(|_| ["a"]).collect();
    let batches: Vec<&[&str]> = payloads.iter().map(|batch| batch.as_slice()).collect();
    let mut source = ScriptedSource::new(&batches, &journal);
    (source.coalesce, source.note_drained) = (true, true);
    let delivery = DeliveryConfig { commit_interval: Duration::from_secs(3600), ..delivery() };
    let sink = ScriptedSink::new(&journal);
    let window = delivery.window(1, 1);
    let (outcome, events, _) = run_with(source, sink, None, delivery, |events, _| committed(events, 50)).await;
    assert_eq!(outcome.unwrap().batches, 50, "every batch counted");
    let drained = events.iter().position(|event| event == "drained").expect("the source went idle");
    let commits: Vec<usize> = (0..events.len()).filter(|&at| events[at].starts_with("commit")).collect();
    assert!(commits.iter().all(|&at| at > drained), "nothing committed while busy: {events:?}");
    // Idle, it commits what is written; the window's last batches may follow.
    assert!(commits.len() <= 1 + window, "{events:?}");
}

#[tokio::test]
async fn given_a_source_that_never_idles_then_positions_are_committed_each_interval() {
    let journal = Journal::default();
    let mut source = ScriptedSource::new(&[], &journal);
    (source.coalesce, source.busy_until_committed, source.note_drained) = (true, true, true);
    let delivery = DeliveryConfig { commit_interval: Duration::from_millis(20), ..delivery() };
    let sink = ScriptedSink::new(&journal);
    let (outcome, events, _) =
        run_with(source, sink, None, delivery, |events, _| events.iter().any(|event| event == "drained")).await;
    let counts = outcome.unwrap();
    let first_commit = events.iter().position(|event| event.starts_with("commit")).expect("a commit");
    let drained = events.iter().position(|event| event == "drained").unwrap();
    assert!(first_commit < drained, "committed while the source was still busy: {events:?}");
    let written = events.iter().filter(|event| event.starts_with("write ")).count() as u64;
    assert_eq!(counts.batches, written, "every written batch committed and counted by the end");
}

#[tokio::test]
async fn given_a_permanent_write_failure_then_stops_without_committing() {
    let journal = Journal::default();
    let source = ScriptedSource::new(&[&["a"]], &journal);
    let sink = ScriptedSink { permanent: true, ..ScriptedSink::new(&journal) };
    let (outcome, events) = run(source, sink, None, |_| false).await;
    let error = outcome.unwrap_err();
    assert!(matches!(error, PipelineError::Service(ref e) if !e.transient), "{error:?}");
    assert_eq!(events, ["connected"], "nothing written or committed");
}

#[tokio::test]
async fn given_a_refused_record_and_no_dead_letters_then_stops_at_it_uncommitted() {
    let journal = Journal::default();
    let source = ScriptedSource::new(&[&["a"], &["b", "bad c"], &["d"]], &journal);
    let sink = ScriptedSink::new(&journal);
    let (outcome, events) = run(source, sink, None, |_| false).await;
    let Err(PipelineError::Undeliverable { position, stage, reason }) = outcome else {
        panic!("expected an undeliverable record, got {outcome:?}");
    };
    assert_eq!((position.as_str(), stage.as_str(), reason.as_str()), ("line 2", "sink", "bad c refused"));
    assert!(committed(&events, 1));
    assert!(!committed(&events, 2) && !committed(&events, 3), "{events:?}");
}

#[tokio::test]
async fn given_a_refused_record_and_dead_letters_then_it_is_kept_with_its_reason_and_the_rest_flows() {
    let journal = Journal::default();
    let source = ScriptedSource::new(&[&["a", "bad b"], &["c"]], &journal);
    let sink = ScriptedSink::new(&journal);
    let dead_letters = MemoryDeadLetters { journal: journal.clone() };
    let (outcome, events) = run(source, sink, Some(dead_letters), |events| committed(events, 2)).await;
    assert_eq!(outcome.unwrap().dead_lettered, 1);
    let at = |event: &str| events.iter().position(|e| e == event).unwrap_or_else(|| panic!("no {event}: {events:?}"));
    assert!(at("dead letter bad b from p at sink: bad b refused") < at("commit 1"), "{events:?}");
    assert!(at("write c") < at("commit 2"), "{events:?}");
}

#[tokio::test]
async fn given_shutdown_while_the_sink_is_down_then_stops_cleanly_without_committing() {
    let journal = Journal::default();
    let source = ScriptedSource::new(&[&["a"]], &journal);
    let sink = ScriptedSink { transient_failures: usize::MAX, ..ScriptedSink::new(&journal) };
    let (outcome, events) = run(source, sink, None, |events| events.len() >= 3).await;
    assert_eq!(outcome.unwrap().batches, 0, "shutdown is clean even mid-retry");
    assert!(events[1..].iter().all(|event| event == "write failed"), "nothing committed: {events:?}");
}

/// The pipeline's error when a stage panicked, and what was committed.
async fn run_to_panic(sink: ScriptedSink, journal: &Journal) -> (StagePanic, &'static str, Vec<String>) {
    let source = ScriptedSource::new(&[&["a"], &["b"], &["c"]], journal);
    let (outcome, events) = run(source, sink, None, |_| false).await;
    match outcome {
        Err(PipelineError::StagePanicked { stage, panic }) => (panic, stage, events),
        other => panic!("expected a stage panic, got {other:?}"),
    }
}

#[tokio::test]
async fn given_a_write_that_panics_then_the_panic_is_the_error_and_nothing_past_it_is_committed() {
    let journal = Journal::default();
    let sink = ScriptedSink { panic_writing: Some("b"), ..ScriptedSink::new(&journal) };
    let (panic, stage, events) = run_to_panic(sink, &journal).await;
    assert_eq!(stage, "write");
    assert!(panic.message.contains("remainder with a divisor of zero"), "{panic}");
    assert!(panic.location.starts_with("host/src/pipeline/tests.rs:"), "{panic}");
    assert!(committed(&events, 1), "{events:?}");
    assert!(!committed(&events, 2) && !committed(&events, 3), "{events:?}");
}

#[tokio::test]
async fn given_a_preparation_that_panics_then_the_transform_stage_is_named_and_nothing_past_it_is_committed() {
    let journal = Journal::default();
    let sink = ScriptedSink { panic_preparing: Some("b"), ..ScriptedSink::new(&journal) };
    let (panic, stage, events) = run_to_panic(sink, &journal).await;
    assert_eq!(stage, "transform");
    assert_eq!(panic.message, "cannot prepare Some(\"b\")");
    assert!(panic.location.starts_with("host/src/pipeline/tests.rs:"), "{panic}");
    assert!(!events.contains(&"write b".to_owned()) && !committed(&events, 2), "{events:?}");
    let error = PipelineError::StagePanicked { stage, panic }.to_string();
    assert!(error.starts_with("the transform stage panicked at host/src/pipeline/tests.rs:"), "{error}");
}

#[tokio::test]
async fn given_a_sink_unreachable_at_first_then_the_pipeline_retries_and_runs_once_it_connects() {
    let journal = Journal::default();
    let source = ScriptedSource::new(&[&["a"], &["bad b", "c"]], &journal);
    let sink = ScriptedSink { unreachable_for: 2, ..ScriptedSink::new(&journal) };
    let dead_letters = MemoryDeadLetters { journal: journal.clone() };
    let (outcome, events, telemetry) =
        run_observed(source, sink, Some(dead_letters), |events| committed(events, 2)).await;
    outcome.unwrap();
    let at = |event: &str| events.iter().position(|e| e == event).unwrap_or_else(|| panic!("no {event}: {events:?}"));
    assert!(at("connected") < at("write a"), "nothing moves before both ends answer: {events:?}");
    assert_eq!(events.iter().filter(|event| *event == "connect failed").count(), 2);
    let counts = telemetry.counts();
    assert_eq!(
        (counts.batches, counts.records_read, counts.records_dead_lettered, counts.outputs_written),
        (2, 3, 1, 2),
        "counted once per record, the refused one as dead-lettered, not written"
    );
    let status = telemetry.status();
    assert_eq!(status.state, State::Running, "running once connected, until the pipeline's end is reported");
    assert!(status.failing.is_empty(), "the connect failures are over: {:?}", status.failing);
}

#[tokio::test]
async fn given_a_poll_failure_and_then_nothing_to_read_then_the_pipeline_is_running_again() {
    let journal = Journal::default();
    let source = ScriptedSource { poll_failures: 1, ..ScriptedSource::new(&[], &journal) };
    let (outcome, events, telemetry) = run_until(source, ScriptedSink::new(&journal), None, |events, telemetry| {
        events.iter().any(|event| event == "poll failed") && telemetry.status().state == State::Running
    })
    .await;
    outcome.unwrap();
    assert!(events.contains(&"poll failed".to_owned()), "{events:?}");
    assert!(telemetry.status().failing.is_empty(), "an empty answer ends the poll failure");
}
