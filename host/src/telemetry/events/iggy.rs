//! Where an Iggy source stands: its partitions, commits and lag.

use std::collections::BTreeMap;

use crate::telemetry::handle::PipelineTelemetry;
use crate::telemetry::status::{PartitionProgress, Position};

/// The pipeline connected to its Iggy server, which speaks the protocol
/// generation `generation` (`"0.8"`, `"0.9"`).
pub struct IggyConnected {
    pub generation: &'static str,
}

impl IggyConnected {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.set_iggy_protocol(self.generation);
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
    /// Status and metrics both move at once once the probe has read the
    /// heads (it refreshes them every few seconds, but a commit is news now:
    /// a gauge that moved only with the probe made throughput look quantised
    /// to it).
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        if let Position::Iggy(partitions) = &mut status.position {
            let progress = partitions.entry(self.partition).or_default();
            progress.committed_offset = Some(self.offset);
            // Only once the probe has read a head: the series start at 0,
            // and a lag of 0 before anyone knows the head would be a lie.
            if let Some(head) = progress.head_offset {
                let lag = lag(head, Some(self.offset));
                progress.lag = Some(lag);
                let series = telemetry.partition(self.partition);
                series.committed.set(self.offset as i64);
                series.lag.set(lag as i64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Telemetry;

    #[test]
    fn given_a_commit_then_the_committed_offset_and_lag_gauges_move_at_once() {
        let telemetry = Telemetry::new();
        let pipeline = telemetry.pipeline("p");
        PartitionsAssigned { partitions: &[0] }.emit(&pipeline);
        let heads = [PartitionHead { partition: 0, head: Some(99), committed: None }];
        PartitionHeads { partitions: &heads }.emit(&pipeline);
        OffsetCommitted { partition: 0, offset: 41 }.emit(&pipeline);
        let text = telemetry.encode_metrics();
        let value = |series: &str| text.lines().find_map(|line| line.strip_prefix(series)).map(str::trim);
        assert_eq!(value(r#"ferry_iggy_committed_offset{pipeline="p",partition="0"}"#), Some("41"), "{text}");
        assert_eq!(value(r#"ferry_iggy_lag_messages{pipeline="p",partition="0"}"#), Some("58"), "{text}");

        // Before the probe has read a head, a commit claims no lag.
        let fresh = telemetry.pipeline("q");
        PartitionsAssigned { partitions: &[0] }.emit(&fresh);
        OffsetCommitted { partition: 0, offset: 41 }.emit(&fresh);
        let text = telemetry.encode_metrics();
        assert!(!text.contains(r#"ferry_iggy_lag_messages{pipeline="q""#), "{text}");
    }
}
