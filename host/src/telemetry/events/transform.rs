//! A transform judged broken (it stops on most records), and back to health.

use std::time::Duration;

use super::{Stage, note, recovered, settle};
use crate::config::OnBrokenTransform;
use crate::telemetry::PipelineTelemetry;

/// More than half of the most recent records stopped their transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub transform: String,
    pub stopped: usize,
    pub seen: usize,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transform `{}` looks broken: {} of the last {} records trapped, timed out or ran out of memory",
            self.transform, self.stopped, self.seen
        )
    }
}

/// Most recent records stopped their transform; `policy` says what follows.
pub struct TransformBroken<'a> {
    pub broken: &'a Broken,
    pub policy: OnBrokenTransform,
    /// When the held batch is tried again (`back_off`).
    pub retry_in: Option<Duration>,
}

impl TransformBroken<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let action = match (self.policy, self.retry_in) {
            (OnBrokenTransform::BackOff, Some(delay)) => {
                format!("holding the batch, trying it again in {delay:?} (on_broken_transform = \"back_off\")")
            }
            (OnBrokenTransform::Stop, _) => "stopping the pipeline (on_broken_transform = \"stop\")".to_owned(),
            _ => format!("dead-lettering what stops it (on_broken_transform = \"{}\")", self.policy.as_str()),
        };
        let message = format!("{}; {action}", self.broken);
        tracing::warn!(transform = %self.broken.transform, "{message}");
        telemetry.transform(&self.broken.transform).broken(true);
        let mut status = telemetry.lock_status();
        status.failing.insert(Stage::Transform.as_str(), note(message));
        settle(telemetry, &mut status);
    }
}

/// The transform runs most records again.
pub struct TransformRecovered<'a> {
    pub transform: &'a str,
}

impl TransformRecovered<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        tracing::info!(transform = %self.transform, "transform `{}` runs most records again", self.transform);
        telemetry.transform(self.transform).broken(false);
        recovered(telemetry, Stage::Transform);
    }
}
