//! The operating layer: what Ferry tells an operator about its pipelines.
//!
//! Stages never call metrics or status code directly. Each pipeline gets a
//! [`PipelineTelemetry`], a narrow handle whose labelled metrics are
//! resolved once when the pipeline starts, and stages emit the typed events
//! of [`events`] into it — once per batch, not per record. An event writes
//! its log line, counts its metrics and updates the pipeline's [`Status`]
//! together, so every metric and status field is found in one folder.
//!
//! [`Telemetry`] is the process-wide side: the Prometheus registry, the
//! metric families, and every pipeline's handle, for the admin endpoint.

pub mod events;
mod handle;
mod labels;
mod metrics;
mod report;
mod status;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use prometheus_client::registry::Registry;

pub use handle::{PartitionTelemetry, PipelineTelemetry, TransformTelemetry};
pub use labels::Stage;
pub use metrics::Metrics;
pub use report::{CountsReport, PartitionReport, PipelineReport, PositionReport};
pub use status::{
    ChangeStreamProgress, ErrorNote, PartitionProgress, Position, ReloadNote, Role, StandbyNote, State, Status,
    TransformInfo, format_time,
};

/// The metrics and statuses of every pipeline in this process.
#[derive(Clone)]
pub struct Telemetry {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Registry,
    metrics: Metrics,
    pipelines: RwLock<BTreeMap<String, PipelineTelemetry>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        Self { shared: Arc::new(Shared { registry, metrics, pipelines: RwLock::default() }) }
    }

    /// The handle of pipeline `name`, made on first use. A pipeline swapped
    /// for a new version keeps its handle: counters go on, status history
    /// stays.
    pub fn pipeline(&self, name: &str) -> PipelineTelemetry {
        if let Some(existing) = self.read().get(name) {
            return existing.clone();
        }
        let mut pipelines = self.shared.pipelines.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        pipelines.entry(name.to_owned()).or_insert_with(|| PipelineTelemetry::new(name, &self.shared.metrics)).clone()
    }

    /// Removes a pipeline that is gone for good: its status and its series.
    pub fn forget(&self, name: &str) {
        let removed = self.shared.pipelines.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(name);
        if let Some(pipeline) = removed {
            pipeline.remove_series();
        }
    }

    /// Every pipeline's handle, by name.
    pub fn pipelines(&self) -> Vec<PipelineTelemetry> {
        self.read().values().cloned().collect()
    }

    /// The Prometheus (OpenMetrics) text exposition. Gauges that count time
    /// from an event are brought up to date first.
    pub fn encode_metrics(&self) -> String {
        let now = SystemTime::now();
        for pipeline in self.read().values() {
            pipeline.refresh_time_gauges(now);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.shared.registry)
            .expect("writing into a String cannot fail");
        text
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, PipelineTelemetry>> {
        self.shared.pipelines.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
