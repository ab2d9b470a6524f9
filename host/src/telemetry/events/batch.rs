//! A batch through the stages: polled, transformed, written, committed.

use std::time::Duration;

use super::{Stage, observe, recovered};
use crate::record::{Batch, DeadLetter, RecordResult, describe_position};
use crate::telemetry::handle::PipelineTelemetry;
use crate::telemetry::labels::DEAD_LETTER_STAGES;

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

/// The source answered a poll with nothing waiting: polling works (again).
pub struct PolledNothing;

impl PolledNothing {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
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
    /// Batches polled and not yet written, now.
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
