//! One pipeline's telemetry handle: its labelled metrics, resolved once,
//! and its status. Stages hold a clone and emit events into it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::labels::{DEAD_LETTER_STAGES, IGGY_PROTOCOLS, STOP_REASONS, Stage, WRITE_KINDS};
use super::metrics::{
    CollectionLabels, CollectionWriteLabels, DeadLetterLabels, IggyProtocolLabels, Metrics, PartitionLabels,
    PipelineLabels, RetryLabels, SecondsGauge, StageLabels, StateLabels, TransformLabels, TransformStopLabels,
};
use super::status::{Position, State, Status};
use crate::error::FailureKind;

/// The most collections one pipeline's MongoDB metrics name; writes to any
/// further collection are counted under `_other`, keeping labels bounded
/// when a transform routes widely.
const MAX_COLLECTION_LABELS: usize = 64;

/// The handle of one pipeline. Cheap to clone.
#[derive(Clone)]
pub struct PipelineTelemetry {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) name: String,
    pub(super) metrics: Metrics,
    pub(super) handles: Handles,
    status: Mutex<Status>,
    /// Label values used so far, so that `remove_series` finds every series.
    partitions: Mutex<BTreeSet<u32>>,
    transforms: Mutex<BTreeSet<String>>,
    collections: Mutex<BTreeSet<String>>,
    /// Per transform, each instance's linear memory after its last call.
    instance_memory: Mutex<BTreeMap<String, InstanceMemory>>,
}

/// The linear memory of each instance of one transform, in bytes.
pub(super) type InstanceMemory = Arc<Mutex<Vec<u64>>>;

/// The series that carry only the pipeline's own labels.
pub(super) struct Handles {
    pub records_read: Counter,
    pub records_emitted: Counter,
    pub records_dropped: Counter,
    pub outputs_written: Counter,
    pub read_bytes: Counter,
    pub written_bytes: Counter,
    pub batches: Counter,
    /// By the stage that failed the record: transform, then sink.
    pub dead_lettered: [Counter; 2],
    pub in_flight: Gauge,
    /// By [`Stage::TIMED`].
    pub stage_duration: [Histogram; 4],
    /// By [`State::ALL`].
    pub states: [Gauge; 6],
    pub behind: SecondsGauge,
    pub idle: SecondsGauge,
    pub headroom: SecondsGauge,
    pub mongodb_write: Histogram,
    pub reloads: Counter,
    pub reload_failures: Counter,
}

/// One transform's series, handed to the transform itself.
#[derive(Clone)]
pub struct TransformTelemetry {
    pub(super) calls: Histogram,
    /// By [`STOP_REASONS`].
    pub(super) stops: [Counter; 3],
    pub(super) restarts: Counter,
    pub(super) recycles: Counter,
    /// The sum over instances: what the transform holds in all.
    pub(super) memory: Gauge,
    pub(super) broken: Gauge,
    /// Which instance this handle reports for, and where each reports.
    pub(super) instance: usize,
    pub(super) instance_memory: InstanceMemory,
}

/// One Iggy partition's series.
#[derive(Clone)]
pub struct PartitionTelemetry {
    pub(super) committed: Gauge,
    pub(super) lag: Gauge,
}

impl PipelineTelemetry {
    pub(super) fn new(name: &str, metrics: &Metrics) -> Self {
        let pipeline = || PipelineLabels { pipeline: name.to_owned() };
        let by_stage = |stage: Stage| {
            metrics
                .stage_duration
                .get_or_create_owned(&StageLabels { pipeline: name.to_owned(), stage: stage.as_str() })
        };
        let by_state = |state: State| {
            metrics
                .pipeline_state
                .get_or_create_owned(&StateLabels { pipeline: name.to_owned(), state: state.as_str() })
        };
        let dead_lettered = |stage: &'static str| {
            metrics.records_dead_lettered.get_or_create_owned(&DeadLetterLabels { pipeline: name.to_owned(), stage })
        };
        let handles = Handles {
            records_read: metrics.records_read.get_or_create_owned(&pipeline()),
            records_emitted: metrics.records_emitted.get_or_create_owned(&pipeline()),
            records_dropped: metrics.records_dropped.get_or_create_owned(&pipeline()),
            outputs_written: metrics.outputs_written.get_or_create_owned(&pipeline()),
            read_bytes: metrics.read_bytes.get_or_create_owned(&pipeline()),
            written_bytes: metrics.written_bytes.get_or_create_owned(&pipeline()),
            batches: metrics.batches.get_or_create_owned(&pipeline()),
            dead_lettered: DEAD_LETTER_STAGES.map(dead_lettered),
            in_flight: metrics.batches_in_flight.get_or_create_owned(&pipeline()),
            stage_duration: Stage::TIMED.map(by_stage),
            states: State::ALL.map(by_state),
            behind: metrics.change_stream_behind.get_or_create_owned(&pipeline()),
            idle: metrics.change_stream_idle.get_or_create_owned(&pipeline()),
            headroom: metrics.oplog_headroom.get_or_create_owned(&pipeline()),
            mongodb_write: metrics.mongodb_write_duration.get_or_create_owned(&pipeline()),
            reloads: metrics.reloads.get_or_create_owned(&pipeline()),
            reload_failures: metrics.reload_failures.get_or_create_owned(&pipeline()),
        };
        let telemetry = Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                metrics: metrics.clone(),
                handles,
                status: Mutex::new(Status::default()),
                partitions: Mutex::default(),
                transforms: Mutex::default(),
                collections: Mutex::default(),
                instance_memory: Mutex::default(),
            }),
        };
        telemetry.set_state_gauges(State::Starting);
        telemetry
    }

    /// A handle outside any process registry: for tools and tests that run
    /// a pipeline without an admin endpoint.
    pub fn detached(name: &str) -> Self {
        super::Telemetry::new().pipeline(name)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A copy of the pipeline's status now.
    pub fn status(&self) -> Status {
        self.lock_status().clone()
    }

    /// The series of one transform of this pipeline, for its first
    /// instance (see [`TransformTelemetry::for_instance`]). A new version
    /// of the pipeline starts its instances' memory afresh.
    pub fn transform(&self, transform: &str) -> TransformTelemetry {
        lock(&self.inner.transforms).insert(transform.to_owned());
        let instance_memory = InstanceMemory::default();
        lock(&self.inner.instance_memory).insert(transform.to_owned(), instance_memory.clone());
        let metrics = &self.inner.metrics;
        let labels = TransformLabels { pipeline: self.inner.name.clone(), transform: transform.to_owned() };
        let stop = |reason: &'static str| {
            metrics.transform_stops.get_or_create_owned(&TransformStopLabels {
                pipeline: self.inner.name.clone(),
                transform: transform.to_owned(),
                reason,
            })
        };
        TransformTelemetry {
            calls: metrics.transform_call_duration.get_or_create_owned(&labels),
            stops: STOP_REASONS.map(stop),
            restarts: metrics.transform_restarts.get_or_create_owned(&labels),
            recycles: metrics.transform_recycles.get_or_create_owned(&labels),
            memory: metrics.transform_memory.get_or_create_owned(&labels),
            broken: metrics.transform_broken.get_or_create_owned(&labels),
            instance: 0,
            instance_memory,
        }
    }

    /// Each instance's linear memory after its last call, for `transform`.
    pub fn instance_memory(&self, transform: &str) -> Vec<u64> {
        lock(&self.inner.instance_memory).get(transform).map(|memory| lock(memory).clone()).unwrap_or_default()
    }

    /// The series of one partition of this pipeline's Iggy source.
    pub fn partition(&self, partition: u32) -> PartitionTelemetry {
        lock(&self.inner.partitions).insert(partition);
        let labels = PartitionLabels { pipeline: self.inner.name.clone(), partition };
        PartitionTelemetry {
            committed: self.inner.metrics.iggy_committed_offset.get_or_create_owned(&labels),
            lag: self.inner.metrics.iggy_lag.get_or_create_owned(&labels),
        }
    }

    /// The retry counter for `stage` and `cause` (retries are rare, so this
    /// is resolved when one happens).
    pub(super) fn retries(&self, stage: Stage, cause: FailureKind) -> Counter {
        let labels = RetryLabels { pipeline: self.inner.name.clone(), stage: stage.as_str(), cause: cause.as_str() };
        self.inner.metrics.retries.get_or_create_owned(&labels)
    }

    /// The documents counter for a collection and write kind, and the
    /// replays counter for the collection.
    pub(super) fn collection(&self, collection: &str, write: &'static str) -> (Counter, Counter) {
        let collection = {
            let mut known = lock(&self.inner.collections);
            if known.contains(collection) || known.len() < MAX_COLLECTION_LABELS {
                known.insert(collection.to_owned());
                collection.to_owned()
            } else {
                "_other".to_owned()
            }
        };
        let metrics = &self.inner.metrics;
        let pipeline = self.inner.name.clone();
        let documents = metrics.mongodb_documents.get_or_create_owned(&CollectionWriteLabels {
            pipeline: pipeline.clone(),
            collection: collection.clone(),
            write,
        });
        let replays = metrics.mongodb_replays.get_or_create_owned(&CollectionLabels { pipeline, collection });
        (documents, replays)
    }

    /// Marks `protocol` as the Iggy protocol generation spoken (and no other).
    pub(super) fn set_iggy_protocol(&self, protocol: &'static str) {
        self.lock_status().iggy_protocol = Some(protocol);
        let metrics = &self.inner.metrics;
        for known in IGGY_PROTOCOLS {
            let labels = IggyProtocolLabels { pipeline: self.inner.name.clone(), protocol: known };
            match known == protocol {
                true => drop(metrics.iggy_protocol.get_or_create(&labels).set(1)),
                // An upgraded server: the series of the old generation goes.
                false => drop(metrics.iggy_protocol.remove(&labels)),
            }
        }
    }

    pub(super) fn lock_status(&self) -> MutexGuard<'_, Status> {
        lock(&self.inner.status)
    }

    /// Sets the state gauges: 1 for `state`, 0 for the others.
    pub(super) fn set_state_gauges(&self, state: State) {
        for (gauge, each) in self.inner.handles.states.iter().zip(State::ALL) {
            gauge.set(i64::from(each == state));
        }
    }

    /// Brings the gauges that count time since an event up to now.
    pub(super) fn refresh_time_gauges(&self, now: SystemTime) {
        let Position::ChangeStream(progress) = &self.lock_status().position else { return };
        let handles = &self.inner.handles;
        if let Some(behind) = progress.seconds_behind(now) {
            handles.behind.set(behind);
        }
        if let Some(idle) = progress.seconds_since_last_event(now) {
            handles.idle.set(idle);
        }
        if let Some(headroom) = progress.oplog_headroom() {
            handles.headroom.set(headroom);
        }
    }

    /// Removes every series of this pipeline from the families.
    pub(super) fn remove_series(&self) {
        let (metrics, name) = (&self.inner.metrics, &self.inner.name);
        let pipeline = PipelineLabels { pipeline: name.clone() };
        metrics.records_read.remove(&pipeline);
        metrics.records_emitted.remove(&pipeline);
        metrics.records_dropped.remove(&pipeline);
        metrics.outputs_written.remove(&pipeline);
        metrics.read_bytes.remove(&pipeline);
        metrics.written_bytes.remove(&pipeline);
        metrics.batches.remove(&pipeline);
        metrics.batches_in_flight.remove(&pipeline);
        metrics.change_stream_behind.remove(&pipeline);
        metrics.change_stream_idle.remove(&pipeline);
        metrics.oplog_headroom.remove(&pipeline);
        metrics.mongodb_write_duration.remove(&pipeline);
        metrics.reloads.remove(&pipeline);
        metrics.reload_failures.remove(&pipeline);
        for stage in DEAD_LETTER_STAGES {
            metrics.records_dead_lettered.remove(&DeadLetterLabels { pipeline: name.clone(), stage });
        }
        for stage in Stage::ALL {
            metrics.stage_duration.remove(&StageLabels { pipeline: name.clone(), stage: stage.as_str() });
            for cause in FailureKind::ALL {
                let labels = RetryLabels { pipeline: name.clone(), stage: stage.as_str(), cause: cause.as_str() };
                metrics.retries.remove(&labels);
            }
        }
        for state in State::ALL {
            metrics.pipeline_state.remove(&StateLabels { pipeline: name.clone(), state: state.as_str() });
        }
        for transform in lock(&self.inner.transforms).iter() {
            let labels = TransformLabels { pipeline: name.clone(), transform: transform.clone() };
            metrics.transform_call_duration.remove(&labels);
            metrics.transform_restarts.remove(&labels);
            metrics.transform_recycles.remove(&labels);
            metrics.transform_memory.remove(&labels);
            metrics.transform_broken.remove(&labels);
            for reason in STOP_REASONS {
                let labels = TransformStopLabels { pipeline: name.clone(), transform: transform.clone(), reason };
                metrics.transform_stops.remove(&labels);
            }
        }
        for protocol in IGGY_PROTOCOLS {
            metrics.iggy_protocol.remove(&IggyProtocolLabels { pipeline: name.clone(), protocol });
        }
        for &partition in lock(&self.inner.partitions).iter() {
            let labels = PartitionLabels { pipeline: name.clone(), partition };
            metrics.iggy_committed_offset.remove(&labels);
            metrics.iggy_lag.remove(&labels);
        }
        for collection in lock(&self.inner.collections).iter().cloned().chain(["_other".to_owned()]) {
            for write in WRITE_KINDS {
                let labels = CollectionWriteLabels { pipeline: name.clone(), collection: collection.clone(), write };
                metrics.mongodb_documents.remove(&labels);
            }
            metrics.mongodb_replays.remove(&CollectionLabels { pipeline: name.clone(), collection });
        }
    }
}

impl TransformTelemetry {
    /// A transform call of `elapsed` finished (whatever its outcome).
    pub fn called(&self, elapsed: Duration) {
        self.calls.observe(elapsed.as_secs_f64());
    }

    /// The instance stopped: `reason` is one of [`STOP_REASONS`].
    pub fn stopped(&self, reason: &'static str) {
        if let Some(index) = STOP_REASONS.iter().position(|each| *each == reason) {
            self.stops[index].inc();
        }
    }

    /// An instance was created again after a stop.
    pub fn restarted(&self) {
        self.restarts.inc();
    }

    /// The same series, for instance `instance` of the transform.
    pub fn for_instance(&self, instance: usize) -> Self {
        Self { instance, ..self.clone() }
    }

    /// The live instance holds `bytes` of linear memory after a call.
    pub fn memory(&self, bytes: u64) {
        let mut memory = lock(&self.instance_memory);
        if memory.len() <= self.instance {
            memory.resize(self.instance + 1, 0);
        }
        memory[self.instance] = bytes;
        let total: u64 = memory.iter().sum();
        self.memory.set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    /// Whether the transform is judged broken now.
    pub fn broken(&self, broken: bool) {
        self.broken.set(i64::from(broken));
    }

    /// The instance was replaced between batches to give its memory back.
    pub fn recycled(&self) {
        self.recycles.inc();
    }
}

/// A lock whose holder never leaves the data half-changed, so a poisoned
/// one is still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
