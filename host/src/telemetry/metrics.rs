//! Every metric Ferry exposes, registered once per process: the one list a
//! reader (and the README's table) can check against `/metrics`.
//!
//! Names follow Prometheus conventions: a `ferry_` prefix, base units in the
//! name (`_seconds`, `_bytes`), `_total` on counters (the encoder adds it and
//! the unit suffix). Every label has a small, bounded set of values.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A gauge of seconds (or any fraction).
pub type SecondsGauge = Gauge<f64, AtomicU64>;

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PipelineLabels {
    pub pipeline: String,
}

/// `stage`: poll, transform, write or commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StageLabels {
    pub pipeline: String,
    pub stage: &'static str,
}

/// `stage`: connect, poll, write, dead_letter or commit; `cause`: which
/// server failed, or `timeout`, `not_ready`, `other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RetryLabels {
    pub pipeline: String,
    pub stage: &'static str,
    pub cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabels {
    pub pipeline: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransformLabels {
    pub pipeline: String,
    pub transform: String,
}

/// `reason`: trap, timeout or out_of_memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransformStopLabels {
    pub pipeline: String,
    pub transform: String,
    pub reason: &'static str,
}

/// `stage`: `transform` (a transform failed the record) or `sink`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DeadLetterLabels {
    pub pipeline: String,
    pub stage: &'static str,
}

/// `protocol`: the generation of Iggy's wire protocol spoken, `0.8` or `0.9`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct IggyProtocolLabels {
    pub pipeline: String,
    pub protocol: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PartitionLabels {
    pub pipeline: String,
    pub partition: u32,
}

/// `write`: insert, upsert, replace or delete.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CollectionWriteLabels {
    pub pipeline: String,
    pub collection: String,
    pub write: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CollectionLabels {
    pub pipeline: String,
    pub collection: String,
}

/// The metric families, shared by every pipeline of the process.
#[derive(Clone)]
pub struct Metrics {
    pub records_read: Family<PipelineLabels, Counter>,
    pub records_emitted: Family<PipelineLabels, Counter>,
    pub records_dropped: Family<PipelineLabels, Counter>,
    pub records_dead_lettered: Family<DeadLetterLabels, Counter>,
    pub outputs_written: Family<PipelineLabels, Counter>,
    pub read_bytes: Family<PipelineLabels, Counter>,
    pub written_bytes: Family<PipelineLabels, Counter>,
    pub batches: Family<PipelineLabels, Counter>,
    pub batches_in_flight: Family<PipelineLabels, Gauge>,
    pub stage_duration: Histograms<StageLabels>,
    pub retries: Family<RetryLabels, Counter>,
    pub pipeline_state: Family<StateLabels, Gauge>,
    pub reload_failures: Family<PipelineLabels, Counter>,
    pub reloads: Family<PipelineLabels, Counter>,
    pub transform_call_duration: Histograms<TransformLabels>,
    pub transform_stops: Family<TransformStopLabels, Counter>,
    pub transform_restarts: Family<TransformLabels, Counter>,
    pub transform_recycles: Family<TransformLabels, Counter>,
    pub transform_memory: Family<TransformLabels, Gauge>,
    pub transform_broken: Family<TransformLabels, Gauge>,
    pub iggy_protocol: Family<IggyProtocolLabels, Gauge>,
    pub iggy_committed_offset: Family<PartitionLabels, Gauge>,
    pub iggy_lag: Family<PartitionLabels, Gauge>,
    pub change_stream_behind: Family<PipelineLabels, SecondsGauge>,
    pub change_stream_idle: Family<PipelineLabels, SecondsGauge>,
    pub oplog_headroom: Family<PipelineLabels, SecondsGauge>,
    pub mongodb_write_duration: Histograms<PipelineLabels>,
    pub mongodb_documents: Family<CollectionWriteLabels, Counter>,
    pub mongodb_replays: Family<CollectionLabels, Counter>,
    pub leader: Family<PipelineLabels, Gauge>,
    pub leader_takeovers: Family<PipelineLabels, Counter>,
    pub lease_renewals_failed: Family<PipelineLabels, Counter>,
}

/// Buckets from 0.5 ms to about 65 s: a transform call on a small batch
/// takes microseconds to milliseconds, a write under a retry seconds.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 18))
}

impl Metrics {
    /// The families, registered in `registry` under the `ferry_` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            records_read: Family::default(),
            records_emitted: Family::default(),
            records_dropped: Family::default(),
            records_dead_lettered: Family::default(),
            outputs_written: Family::default(),
            read_bytes: Family::default(),
            written_bytes: Family::default(),
            batches: Family::default(),
            batches_in_flight: Family::default(),
            stage_duration: Family::new_with_constructor(duration_histogram),
            retries: Family::default(),
            pipeline_state: Family::default(),
            reload_failures: Family::default(),
            reloads: Family::default(),
            transform_call_duration: Family::new_with_constructor(duration_histogram),
            transform_stops: Family::default(),
            transform_restarts: Family::default(),
            transform_recycles: Family::default(),
            transform_memory: Family::default(),
            transform_broken: Family::default(),
            iggy_committed_offset: Family::default(),
            iggy_lag: Family::default(),
            iggy_protocol: Family::default(),
            change_stream_behind: Family::default(),
            change_stream_idle: Family::default(),
            oplog_headroom: Family::default(),
            mongodb_write_duration: Family::new_with_constructor(duration_histogram),
            mongodb_documents: Family::default(),
            mongodb_replays: Family::default(),
            leader: Family::default(),
            leader_takeovers: Family::default(),
            lease_renewals_failed: Family::default(),
        };
        let ferry = registry.sub_registry_with_prefix("ferry");
        let m = metrics.clone();
        ferry.register("records_read", "Records read from the source", m.records_read);
        ferry.register("records_emitted", "Records the transforms turned into at least one output", m.records_emitted);
        ferry.register("records_dropped", "Records the transforms dropped", m.records_dropped);
        ferry.register(
            "records_dead_lettered",
            "Records sent to the dead-letter topic, by the stage that failed them",
            m.records_dead_lettered,
        );
        ferry.register("outputs_written", "Outputs written to the sink", m.outputs_written);
        ferry.register_with_unit("read", "Payload bytes read from the source", Unit::Bytes, m.read_bytes);
        ferry.register_with_unit("written", "Payload bytes written to the sink", Unit::Bytes, m.written_bytes);
        ferry.register("batches", "Batches written and committed", m.batches);
        ferry.register(
            "batches_in_flight",
            "Batches polled and not yet written (bounded by delivery.max_in_flight)",
            m.batches_in_flight,
        );
        ferry.register_with_unit(
            "stage_duration",
            "Time a batch spent in a stage: poll (polls that returned a batch), transform, write (with retries and \
             dead letters), commit",
            Unit::Seconds,
            m.stage_duration,
        );
        ferry.register("retries", "Transient failures retried, by stage and cause", m.retries);
        ferry.register(
            "pipeline_state",
            "1 for the state the pipeline is in (starting, running, retrying, failed, stopped, standby), 0 for the others",
            m.pipeline_state,
        );
        ferry.register("reloads", "Reloads that swapped in a new version of the pipeline", m.reloads);
        ferry.register(
            "reload_failures",
            "Reloads refused because the new version was invalid (the old one kept running)",
            m.reload_failures,
        );
        ferry.register_with_unit(
            "transform_call_duration",
            "Time one transform call (one batch) took",
            Unit::Seconds,
            m.transform_call_duration,
        );
        ferry.register(
            "transform_stops",
            "Transform instances stopped by a trap, their timeout or their memory limit",
            m.transform_stops,
        );
        ferry.register("transform_restarts", "Transform instances created again after a stop", m.transform_restarts);
        ferry.register(
            "transform_recycles",
            "Transform instances replaced between batches because their memory passed recycle_memory_above",
            m.transform_recycles,
        );
        ferry.register(
            "transform_broken",
            "1 while the transform stops (traps, times out, runs out of memory) on most recent records",
            m.transform_broken,
        );
        ferry.register_with_unit(
            "transform_memory",
            "Linear memory of the transform's live instances after their last calls, summed over instances",
            Unit::Bytes,
            m.transform_memory,
        );
        ferry.register(
            "iggy_protocol_info",
            "1 for the generation of Iggy's wire protocol the pipeline speaks with its Iggy server",
            m.iggy_protocol,
        );
        ferry.register(
            "iggy_committed_offset",
            "The consumer group's committed offset, per partition",
            m.iggy_committed_offset,
        );
        ferry.register(
            "iggy_lag_messages",
            "Messages in the partition after the consumer group's committed offset",
            m.iggy_lag,
        );
        ferry.register_with_unit(
            "change_stream_behind",
            "Now minus the cluster time of the last change handed on (0 while the stream has nothing waiting)",
            Unit::Seconds,
            m.change_stream_behind,
        );
        ferry.register_with_unit(
            "change_stream_since_last_event",
            "Time since the change stream last delivered an event",
            Unit::Seconds,
            m.change_stream_idle,
        );
        ferry.register_with_unit(
            "oplog_headroom",
            "Stored resume point minus the oldest entry still in the oplog: how long the pipeline can stay down \
             before a restart finds its history lost",
            Unit::Seconds,
            m.oplog_headroom,
        );
        ferry.register_with_unit(
            "mongodb_write_duration",
            "Time one MongoDB write command took",
            Unit::Seconds,
            m.mongodb_write_duration,
        );
        ferry.register(
            "mongodb_documents",
            "Documents written to MongoDB, by collection and write kind (replays not included)",
            m.mongodb_documents,
        );
        ferry.register(
            "mongodb_replays",
            "Inserts of documents MongoDB already held (a replay after a crash or retry): written before, not again",
            m.mongodb_replays,
        );
        ferry.register(
            "leader",
            "1 while this process holds the lease of a pipeline with standbys and runs it, 0 while it stands by",
            m.leader,
        );
        ferry.register("leader_takeovers", "Times this process took a pipeline with standbys over", m.leader_takeovers);
        ferry.register(
            "lease_renewals_failed",
            "Renewals of a held lease that failed (no answer in time, or an error)",
            m.lease_renewals_failed,
        );
        metrics
    }
}
