//! Where a change stream stands: its events, its resume point, the oplog.

use std::time::SystemTime;

use crate::telemetry::handle::PipelineTelemetry;
use crate::telemetry::status::{ChangeStreamProgress, Position, Status};

/// The change stream answered a poll with `events` events, or with none:
/// it has nothing waiting (caught up).
pub struct ChangesPolled {
    pub events: usize,
}

impl ChangesPolled {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        let progress = change_stream(&mut status);
        progress.caught_up = self.events == 0;
        if self.events > 0 {
            progress.last_event_at = Some(SystemTime::now());
        }
    }
}

/// A change stream position was committed: everything up to it is in the
/// destination. `resume_time` is its cluster time (seconds), if known;
/// `last_change` the cluster time of the last change it covers.
pub struct ChangesCommitted {
    pub resume_time: Option<u32>,
    pub last_change: Option<u32>,
}

impl ChangesCommitted {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let mut status = telemetry.lock_status();
        let progress = change_stream(&mut status);
        if let Some(time) = self.resume_time.or(self.last_change) {
            progress.resume_time = Some(time);
        }
        if let Some(time) = self.last_change {
            progress.last_change = Some((time, SystemTime::now()));
        }
    }
}

/// The oplog's oldest entry, as the headroom probe read it (seconds of
/// cluster time).
pub struct OplogRead {
    pub oldest: u32,
}

impl OplogRead {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        change_stream(&mut telemetry.lock_status()).oplog_oldest = Some(self.oldest);
    }
}

fn change_stream(status: &mut Status) -> &mut ChangeStreamProgress {
    if !matches!(status.position, Position::ChangeStream(_)) {
        status.position = Position::ChangeStream(ChangeStreamProgress::default());
    }
    match &mut status.position {
        Position::ChangeStream(progress) => progress,
        _ => unreachable!("set above"),
    }
}
