//! The leader's renewals: every quarter lease, each a fresh proof for the
//! fence. A renewal that fails is retried at the next tick; the leader
//! stands down once the lease it can prove runs for less than the margin,
//! or at once when another process holds it.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Fence, LeaseStore};
use crate::config::StandbyConfig;
use crate::error::ServiceError;
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::LeaseRenewalFailed;

/// Renews the lease of `epoch` until `stop`, or until the lease is lost
/// (then `fence` is lost too).
pub async fn keep(
    store: &LeaseStore,
    epoch: i64,
    config: &StandbyConfig,
    fence: &Fence,
    telemetry: &PipelineTelemetry,
    stop: &CancellationToken,
) {
    let every = config.renew_every();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
            () = fence.lost() => return,
        }
        let sent = Instant::now();
        // A renewal that takes longer than a tick is as good as failed:
        // the next one is due.
        let renewed = tokio::time::timeout(every, store.renew(epoch)).await;
        let failure = match renewed {
            Ok(Ok(true)) => {
                fence.held(sent, config.lease);
                continue;
            }
            Ok(Ok(false)) => {
                tracing::warn!(epoch, "another process holds the lease now");
                fence.lose();
                return;
            }
            Ok(Err(error)) => error,
            Err(_) => ServiceError::timed_out("renewing the lease", every),
        };
        LeaseRenewalFailed { error: &failure }.emit(telemetry);
        if !fence.proven() {
            fence.lose();
            return;
        }
    }
}
