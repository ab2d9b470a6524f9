//! Parallelism's promises, with in-memory stand-ins: batches written side by
//! side only when independent, positions committed in poll order whatever
//! order the writes finish in, and results rejoined in poll order after
//! several transform instances.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::drive;
use super::tests::{Journal, ScriptedSource, committed, delivery, events, note};
use super::writer::Writer;
use crate::config::DeliveryConfig;
use crate::error::ServiceError;
use crate::record::{Batch, RecordResult};
use crate::sink::dead_letter::DeadLetterSink;
use crate::sink::{Overlap, Prepare, Rejection, Sink};
use crate::telemetry::PipelineTelemetry;
use crate::wasm::TransformChain;

/// A sink with `lanes` lanes. A payload is `key` or `key/slow`: batches
/// sharing a key depend on each other, and a slow one takes 50 ms to write.
#[derive(Clone)]
struct LaneSink {
    lanes: usize,
    journal: Journal,
}

/// A batch's keys.
struct Keys(Vec<String>);

impl Overlap for Keys {
    fn depends_on(&self, other: &Self) -> bool {
        self.0.iter().any(|key| other.0.contains(key))
    }
}

struct KeyReader;

impl Prepare for KeyReader {
    type Prepared = Keys;

    fn prepare(&self, batch: &Batch, _: &[RecordResult]) -> Keys {
        Keys(batch.records.iter().map(|record| key_of(&payload(record))).collect())
    }
}

fn payload(record: &crate::record::Record) -> String {
    String::from_utf8_lossy(&record.payload).into_owned()
}

fn key_of(payload: &str) -> String {
    payload.split('/').next().unwrap_or_default().to_owned()
}

impl Sink for LaneSink {
    type Prepare = KeyReader;

    fn preparer(&self) -> KeyReader {
        KeyReader
    }

    fn more_lanes(&self) -> Vec<Self> {
        (1..self.lanes).map(|_| self.clone()).collect()
    }

    async fn connect(&mut self) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn write(&mut self, batch: &Batch, _: &[RecordResult], _: &Keys) -> Result<Vec<Rejection>, ServiceError> {
        let payloads: Vec<String> = batch.records.iter().map(payload).collect();
        let payloads = payloads.join(",");
        note(&self.journal, format!("start {payloads}"));
        if payloads.contains("/slow") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        note(&self.journal, format!("end {payloads}"));
        Ok(Vec::new())
    }
}

struct NoDeadLetters;

impl DeadLetterSink for NoDeadLetters {
    async fn send(&mut self, _: &str, _: &Batch, _: &[crate::record::DeadLetter]) -> Result<(), ServiceError> {
        unreachable!("nothing fails here")
    }
}

/// Runs `batches` through `instances` empty chains into a sink of `lanes`
/// lanes until the last batch is committed; the journal's events.
async fn run(batches: &[&[&str]], instances: usize, lanes: usize) -> Vec<String> {
    let journal = Journal::default();
    let source = ScriptedSource::new(batches, &journal);
    let (outcome, events) = run_source(source, batches.len() as u64, instances, lanes).await;
    outcome.expect("the pipeline ran");
    events
}

/// Runs `source` until batch `last` is committed or the pipeline stops.
async fn run_source(
    source: ScriptedSource,
    last: u64,
    instances: usize,
    lanes: usize,
) -> (Result<crate::pipeline::Counts, crate::pipeline::PipelineError>, Vec<String>) {
    let journal = source.journal.clone();
    let sink = LaneSink { lanes, journal: journal.clone() };
    let shutdown = CancellationToken::new();
    let telemetry = PipelineTelemetry::detached("p");
    let delivery = DeliveryConfig { max_in_flight: Some(8), ..delivery() };
    let writer = Writer::<_, NoDeadLetters>::new(sink, None, &delivery, &telemetry);
    let chains = (0..instances).map(|_| TransformChain::new(Vec::new())).collect();
    let task = tokio::spawn(drive(source, chains, writer, delivery, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !committed(&events(&journal), last) && !task.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "stuck: {:?}", events(&journal));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shutdown.cancel();
    (task.await.unwrap(), events(&journal))
}

fn at(events: &[String], event: &str) -> usize {
    events.iter().position(|e| e == event).unwrap_or_else(|| panic!("no {event}: {events:?}"))
}

fn commits(events: &[String]) -> Vec<&str> {
    events.iter().filter(|event| event.starts_with("commit")).map(String::as_str).collect()
}

#[tokio::test]
async fn given_independent_batches_and_two_lanes_then_a_later_write_overlaps_a_slow_one_and_commits_wait_for_it() {
    let events = run(&[&["a/slow"], &["b"]], 1, 2).await;
    assert!(at(&events, "start b") < at(&events, "end a/slow"), "b did not overlap a: {events:?}");
    assert!(at(&events, "end b") < at(&events, "end a/slow"), "{events:?}");
    assert!(at(&events, "end a/slow") < at(&events, "commit 1"), "{events:?}");
    assert_eq!(commits(&events), ["commit 1", "commit 2"], "in poll order: {events:?}");
}

#[tokio::test]
async fn given_batches_touching_a_common_key_then_the_later_waits_for_the_earlier() {
    let events = run(&[&["a/slow"], &["a"], &["b"]], 1, 4).await;
    assert!(at(&events, "end a/slow") < at(&events, "start a"), "a was reordered: {events:?}");
    // The independent batch behind the held one waits too: batches start in
    // poll order.
    assert!(at(&events, "start a") < at(&events, "start b"), "{events:?}");
}

#[tokio::test]
async fn given_one_lane_then_writes_never_overlap() {
    let events = run(&[&["a/slow"], &["b"]], 1, 1).await;
    assert!(at(&events, "end a/slow") < at(&events, "start b"), "{events:?}");
}

#[tokio::test]
async fn given_several_transform_instances_then_batches_are_written_and_committed_in_poll_order() {
    let payloads: Vec<String> = (0..200).map(|n| format!("k{n}")).collect();
    let batches: Vec<[&str; 1]> = payloads.iter().map(|payload| [payload.as_str()]).collect();
    let batches: Vec<&[&str]> = batches.iter().map(|batch| batch.as_slice()).collect();
    let events = run(&batches, 3, 1).await;
    let written: Vec<&str> = events.iter().filter_map(|event| event.strip_prefix("end ")).collect();
    assert_eq!(written, payloads.iter().map(String::as_str).collect::<Vec<_>>(), "written out of order");
    let numbers: Vec<u64> = commits(&events).iter().map(|commit| commit["commit ".len()..].parse().unwrap()).collect();
    assert!(numbers.is_sorted(), "committed out of order: {numbers:?}");
    assert_eq!(numbers.len(), 200, "every batch committed (the stand-in commits each alone)");
}

#[tokio::test]
async fn given_a_source_that_fails_for_good_then_the_batches_read_before_are_written_and_committed_first() {
    let journal = Journal::default();
    let mut source = ScriptedSource::new(&[&["a/slow"], &["b/slow"], &["c"]], &journal);
    source.fails_when_drained = true;
    let (outcome, events) = run_source(source, u64::MAX, 2, 4).await;
    let error = outcome.expect_err("the poll failure stops the pipeline");
    assert!(matches!(&error, crate::pipeline::PipelineError::Service(e) if !e.transient), "{error:?}");
    assert_eq!(commits(&events), ["commit 1", "commit 2", "commit 3"], "{events:?}");
}
