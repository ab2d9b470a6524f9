//! A reload refusing, finding unchanged, or swapping a pipeline.

use std::time::{Duration, Instant, SystemTime};

use super::note;
use crate::telemetry::handle::PipelineTelemetry;

/// A reload found the pipeline's new version invalid; the old one runs on.
pub struct ReloadRefused<'a> {
    pub error: &'a str,
}

impl ReloadRefused<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.inner.handles.reload_failures.inc();
        telemetry.lock_status().reload.refused = Some(note(self.error.to_owned()));
        tracing::error!(pipeline = %telemetry.name(), "reload refused, the running version goes on: {}", self.error);
    }
}

/// A reload found the pipeline as it runs: a reload refused before (say,
/// of a file saved half-written) is over.
pub struct ReloadUnchanged;

impl ReloadUnchanged {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.lock_status().reload.refused = None;
    }
}

/// A reload drained the pipeline's old version and swaps in the new one,
/// whose transforms are already loaded; the swap is over when the new
/// version is running (see [`EndsConnected`]).
pub struct ReloadSwapped {
    /// When the old version began to drain.
    pub draining_since: Instant,
    /// How long the old version took to finish its batches in flight.
    pub drained_in: Duration,
}

impl ReloadSwapped {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.inner.handles.reloads.inc();
        let mut status = telemetry.lock_status();
        status.reload.swaps += 1;
        status.reload.last_swap = Some(SystemTime::now());
        status.reload.last_drain_seconds = Some(self.drained_in.as_secs_f64());
        status.reload.draining_since = Some(self.draining_since);
        status.reload.refused = None;
        drop(status);
        tracing::info!(pipeline = %telemetry.name(), drained_in = ?self.drained_in, "reloaded: the new version resumes from the committed position");
    }
}
