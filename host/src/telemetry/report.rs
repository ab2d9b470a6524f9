//! A pipeline's status as JSON, for `/pipelines` and `/ready`: state and
//! why, counts, where it stands in its source and how far behind, and the
//! transforms it runs. Nothing from its configuration beyond names, so no
//! connection string (and no credential) can appear.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::handle::PipelineTelemetry;
use super::status::{
    ErrorNote, PartitionProgress, Position, ReloadNote, StandbyNote, State, TransformInfo, format_time,
};

#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub name: String,
    pub state: State,
    /// When it entered that state.
    pub since: String,
    pub ready: bool,
    /// Why it is not ready, when it is not.
    pub reason: Option<String>,
    /// Per stage, the transient failure being retried.
    pub failing: BTreeMap<&'static str, ErrorNote>,
    pub last_error: Option<ErrorNote>,
    pub counts: CountsReport,
    pub position: PositionReport,
    pub transforms: Vec<TransformReport>,
    pub reload: ReloadNote,
    /// The generation of Iggy's wire protocol spoken (`"0.8"`, `"0.9"`),
    /// once connected.
    pub iggy_protocol: Option<&'static str>,
    /// This process's part, when the pipeline has standbys (`[source.mongodb]
    /// standby`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby: Option<StandbyNote>,
}

/// A transform loaded, and each of its instances' memory.
#[derive(Debug, Serialize)]
pub struct TransformReport {
    #[serde(flatten)]
    pub info: TransformInfo,
    /// Linear memory of each instance after its last call (one entry per
    /// instance of `[delivery] transform_instances`; empty until a call).
    pub instance_memory_bytes: Vec<u64>,
}

/// What the pipeline did since the process started (across reloads).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CountsReport {
    pub batches: u64,
    pub records_read: u64,
    pub records_emitted: u64,
    pub records_dropped: u64,
    pub records_dead_lettered: u64,
    pub outputs_written: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

#[derive(Debug, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum PositionReport {
    /// Nothing read or committed yet.
    Unknown,
    Iggy {
        /// Messages after the committed offsets, over all partitions.
        lag_messages: Option<u64>,
        partitions: Vec<PartitionReport>,
    },
    ChangeStream {
        /// Where a restart resumes.
        resume_time: Option<String>,
        seconds_behind: Option<f64>,
        seconds_since_last_event: Option<f64>,
        oplog_headroom_seconds: Option<f64>,
    },
}

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub partition: u32,
    #[serde(flatten)]
    pub progress: PartitionProgress,
}

impl PipelineTelemetry {
    /// The counters' values now.
    pub fn counts(&self) -> CountsReport {
        let handles = &self.inner.handles;
        CountsReport {
            batches: handles.batches.get(),
            records_read: handles.records_read.get(),
            records_emitted: handles.records_emitted.get(),
            records_dropped: handles.records_dropped.get(),
            records_dead_lettered: handles.dead_lettered.iter().map(|counter| counter.get()).sum(),
            outputs_written: handles.outputs_written.get(),
            read_bytes: handles.read_bytes.get(),
            written_bytes: handles.written_bytes.get(),
        }
    }

    /// The status as of `now`.
    pub fn report(&self, now: SystemTime) -> PipelineReport {
        let status = self.status();
        let position = match &status.position {
            Position::Unknown => PositionReport::Unknown,
            Position::Iggy(partitions) => PositionReport::Iggy {
                lag_messages: partitions.values().map(|progress| progress.lag).sum(),
                partitions: partitions
                    .iter()
                    .map(|(&partition, progress)| PartitionReport { partition, progress: progress.clone() })
                    .collect(),
            },
            Position::ChangeStream(progress) => PositionReport::ChangeStream {
                resume_time: progress.resume_time.map(|seconds| {
                    format_time(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(seconds)))
                }),
                seconds_behind: progress.seconds_behind(now),
                seconds_since_last_event: progress.seconds_since_last_event(now),
                oplog_headroom_seconds: progress.oplog_headroom(),
            },
        };
        let reason = status.not_ready_because();
        PipelineReport {
            name: self.name().to_owned(),
            state: status.state,
            since: format_time(status.since),
            ready: reason.is_none(),
            reason,
            failing: status.failing,
            last_error: status.last_error,
            counts: self.counts(),
            position,
            transforms: status
                .transforms
                .into_iter()
                .map(|info| TransformReport { instance_memory_bytes: self.instance_memory(&info.name), info })
                .collect(),
            reload: status.reload,
            iggy_protocol: status.iggy_protocol,
            standby: status.standby,
        }
    }
}
