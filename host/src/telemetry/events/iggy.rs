//! Where an Iggy source stands: its partitions, commits and lag.

use std::collections::BTreeMap;

use crate::telemetry::handle::PipelineTelemetry;
use crate::telemetry::status::{PartitionProgress, Position};

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
