//! Everything that happens in a pipeline that an operator can see, one
//! struct per event. Stages build an event and `emit` it into the
//! pipeline's handle; `emit` writes the log line (if the event has one),
//! counts the metrics and updates the status, together.
//!
//! A pipeline's events are emitted within its span, which names it in
//! every log line; the reload events, emitted by the runner outside it,
//! name the pipeline themselves.

mod batch;
mod change_stream;
mod iggy;
mod lifecycle;
mod mongodb;
mod reload;
mod standby;
mod transform;

use std::time::{Duration, SystemTime};

pub use super::labels::{Stage, WRITE_KINDS};
pub use batch::{BatchCommitted, BatchPolled, BatchTransformed, BatchWritten, PolledNothing};
pub use change_stream::{ChangesCommitted, ChangesPolled, OplogRead};
pub use iggy::{IggyConnected, OffsetCommitted, PartitionHead, PartitionHeads, PartitionsAssigned};
pub use lifecycle::{EndsConnected, PipelineStarting, PipelineStopped, RetryScheduled};
pub use mongodb::MongoWrites;
pub use reload::{ReloadRefused, ReloadSwapped, ReloadUnchanged};
pub use standby::{
    LeaseAnswered, LeaseReleased, LeaseRenewalFailed, LeaseUnreachable, StandingBy, StoodDown, TookOver,
};
pub use transform::{Broken, TransformBroken, TransformRecovered};

use super::handle::PipelineTelemetry;
use super::status::{ErrorNote, Role, State, Status};

/// Moves `status` to the state its flags say, unless it has ended.
pub(super) fn settle(telemetry: &PipelineTelemetry, status: &mut Status) {
    let state = match status.state {
        State::Failed | State::Stopped => return,
        _ if status.standby.as_ref().is_some_and(|note| note.role == Role::Standby) => State::Standby,
        _ if !status.failing.is_empty() => State::Retrying,
        _ if !status.connected => State::Starting,
        _ => State::Running,
    };
    set_state(telemetry, status, state);
}

pub(super) fn set_state(telemetry: &PipelineTelemetry, status: &mut Status, state: State) {
    if status.state != state {
        status.state = state;
        status.since = SystemTime::now();
        telemetry.set_state_gauges(state);
    }
}

/// Clears `stage`'s failure once it succeeds again.
pub(super) fn recovered(telemetry: &PipelineTelemetry, stage: Stage) {
    let mut status = telemetry.lock_status();
    if status.failing.remove(stage.as_str()).is_some() {
        settle(telemetry, &mut status);
    }
}

pub(super) fn note(message: String) -> ErrorNote {
    ErrorNote { message, at: SystemTime::now() }
}

/// Adds `elapsed` to `stage`'s duration histogram.
pub(super) fn observe(telemetry: &PipelineTelemetry, stage: Stage, elapsed: Duration) {
    if let Some(index) = stage.timed_index() {
        telemetry.inner.handles.stage_duration[index].observe(elapsed.as_secs_f64());
    }
}
