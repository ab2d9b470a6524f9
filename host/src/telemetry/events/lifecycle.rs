//! A pipeline starting, reaching its ends, retrying, and ending.

use std::time::Duration;

use super::{Stage, note, set_state, settle};
use crate::error::{ServiceError, error_chain};
use crate::telemetry::handle::PipelineTelemetry;
use crate::telemetry::status::{State, TransformInfo};

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
        // A restarted pipeline starts afresh, whatever state it was in.
        status.state = State::Starting;
        status.since = std::time::SystemTime::now();
        telemetry.set_state_gauges(State::Starting);
        drop(status);
        let transforms: Vec<String> = self.transforms.iter().map(TransformInfo::version).collect();
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
