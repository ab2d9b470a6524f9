//! A pipeline with standbys: standing by, taking over, standing down, and
//! renewals of the lease that failed.

use super::{PipelineTelemetry, set_state, settle};
use crate::error::{ServiceError, error_chain};
use crate::telemetry::metrics::PipelineLabels;
use crate::telemetry::status::{Role, StandbyNote, State};

/// The process waits for the lease, its transforms loaded.
pub struct StandingBy<'a> {
    pub holder: &'a str,
}

impl StandingBy<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        leader_gauge(telemetry).set(0);
        let mut status = telemetry.lock_status();
        let note = status.standby.get_or_insert_with(|| StandbyNote {
            role: Role::Standby,
            epoch: None,
            holder: self.holder.to_owned(),
            takeovers: 0,
            lease_renewals_failed: 0,
        });
        note.role = Role::Standby;
        note.epoch = None;
        status.connected = false;
        status.failing.clear();
        set_state(telemetry, &mut status, State::Standby);
        drop(status);
        tracing::info!(holder = self.holder, "standing by: another process holds the lease, or none has yet");
    }
}

/// The process took the lease: it runs the pipeline from where the topic
/// stands.
pub struct TookOver {
    pub epoch: i64,
}

impl TookOver {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        leader_gauge(telemetry).set(1);
        telemetry.inner.metrics.leader_takeovers.get_or_create(&labels(telemetry)).inc();
        let mut status = telemetry.lock_status();
        if let Some(note) = &mut status.standby {
            note.role = Role::Leader;
            note.epoch = Some(self.epoch);
            note.takeovers += 1;
        }
        set_state(telemetry, &mut status, State::Starting);
        settle(telemetry, &mut status);
        drop(status);
        tracing::info!(epoch = self.epoch, "took the lease over: running the pipeline");
    }
}

/// The process no longer holds the lease (or cannot prove it does): it
/// stopped producing and stands by again.
pub struct StoodDown<'a> {
    pub reason: &'a str,
}

impl StoodDown<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        leader_gauge(telemetry).set(0);
        tracing::warn!("stood down: {}", self.reason);
    }
}

/// The leader stopped (shutdown, a reload, or a failure) and gave its
/// lease up, so a standby takes over at once.
pub struct LeaseReleased {
    pub released: bool,
}

impl LeaseReleased {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        leader_gauge(telemetry).set(0);
        match self.released {
            true => tracing::info!("lease released: a standby takes over"),
            false => tracing::warn!("could not release the lease: a standby takes over when it expires"),
        }
    }
}

/// A standby could not ask for the lease (MongoDB unreachable): it could
/// not take over now, so it is not ready until it can ask again.
pub struct LeaseUnreachable<'a> {
    pub error: &'a ServiceError,
}

/// The key of a standby's failure in the status.
const ASKING: &str = "lease";

impl LeaseUnreachable<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        let message = error_chain(self.error);
        let mut status = telemetry.lock_status();
        let first = !status.failing.contains_key(ASKING);
        status.failing.insert(ASKING, super::note(message.clone()));
        drop(status);
        // Said once per outage: a standby asks every retry period.
        if first {
            tracing::warn!("cannot ask for the lease: {message}");
        }
    }
}

/// A standby asked for the lease and was answered (held by another, or
/// taken).
pub struct LeaseAnswered;

impl LeaseAnswered {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.lock_status().failing.remove(ASKING);
    }
}

/// A renewal of the held lease failed; the process goes on leading while
/// its lease still runs long enough.
pub struct LeaseRenewalFailed<'a> {
    pub error: &'a ServiceError,
}

impl LeaseRenewalFailed<'_> {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        telemetry.inner.metrics.lease_renewals_failed.get_or_create(&labels(telemetry)).inc();
        if let Some(note) = &mut telemetry.lock_status().standby {
            note.lease_renewals_failed += 1;
        }
        tracing::warn!("renewing the lease failed: {}", error_chain(self.error));
    }
}

fn labels(telemetry: &PipelineTelemetry) -> PipelineLabels {
    PipelineLabels { pipeline: telemetry.name().to_owned() }
}

fn leader_gauge(telemetry: &PipelineTelemetry) -> prometheus_client::metrics::gauge::Gauge {
    telemetry.inner.metrics.leader.get_or_create_owned(&labels(telemetry))
}
