//! A pipeline with standbys, as one process runs it: stand by until the
//! lease is free, take it, run the pipeline while the keeper renews it,
//! and stand by again when it is lost. On shutdown (or a reload) the leader
//! finishes its batches in flight, commits them and releases the lease, so
//! a standby takes over at its next try instead of after the lease.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::launch::LoadedPipeline;
use super::{Counts, PipelineError};
use crate::config::StandbyConfig;
use crate::error::ServiceError;
use crate::standby::{Fence, LeaseStore, keep};
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::{LeaseAnswered, LeaseReleased, LeaseUnreachable, StandingBy, StoodDown, TookOver};

/// Runs `loaded` (a change-stream pipeline reading `uri`) whenever this
/// process holds its lease, until `shutdown`.
pub async fn run(
    mut loaded: LoadedPipeline,
    uri: &str,
    standby: StandbyConfig,
    telemetry: &PipelineTelemetry,
    shutdown: CancellationToken,
) -> Result<Counts, PipelineError> {
    // One client for the lease and the change stream: its pool stays open
    // while standing by.
    let client = crate::mongo_client::client(uri).await?;
    let store = LeaseStore::new(&client, &standby.database, &loaded.config.name, standby.lease);
    let (config, runtime) = (loaded.config.clone(), loaded.runtime.clone());
    let call_timeout = config.delivery.call_timeout;
    let mut counts = Counts::default();
    loop {
        let fence = Fence::new(standby.margin());
        let mut ends = loaded.change_ends(client.clone(), Some(fence.clone()), telemetry)?;
        StandingBy { holder: store.holder() }.emit(telemetry);
        if let Some(ends) = &mut ends {
            ends.reach(call_timeout).await;
        }
        let Some(epoch) = take_lease(&store, &standby, &fence, telemetry, &shutdown).await else {
            return Ok(counts);
        };
        TookOver { epoch }.emit(telemetry);
        if let Some(ends) = &mut ends {
            ends.before_takeover();
        }
        let term = shutdown.child_token();
        let keeper_stop = CancellationToken::new();
        let (outcome, ()) = tokio::join!(
            async {
                let outcome = loaded.drive(telemetry, term.clone(), ends).await;
                keeper_stop.cancel();
                outcome
            },
            async {
                keep(&store, epoch, &standby, &fence, telemetry, &keeper_stop).await;
                // Lost (by the keeper, or by a write that found no proof):
                // stop the term, so an idle pipeline stops too.
                if fence.is_lost() {
                    term.cancel();
                }
            },
        );
        if !fence.is_lost() {
            // Stopping on request, or the pipeline ended by itself while
            // leading (a failure a standby may get past): give the lease
            // up at once.
            let released = store.release(epoch).await;
            LeaseReleased { released: released.is_ok() }.emit(telemetry);
            counts.add(outcome?);
            return Ok(counts);
        }
        if let Ok(done) = outcome {
            counts.add(done);
        }
        if shutdown.is_cancelled() {
            return Ok(counts);
        }
        StoodDown { reason: "the lease is lost or cannot be proven; another process may lead now" }.emit(telemetry);
        // The transforms went with the run: load them again before
        // standing by, so a later takeover costs no start-up either.
        loaded = LoadedPipeline::new(config.clone(), runtime.clone(), telemetry).await?;
    }
}

/// Asks for the lease every retry period until it is taken (its epoch) or
/// `shutdown` fires (`None`).
async fn take_lease(
    store: &LeaseStore,
    standby: &StandbyConfig,
    fence: &Fence,
    telemetry: &PipelineTelemetry,
    shutdown: &CancellationToken,
) -> Option<i64> {
    loop {
        let sent = Instant::now();
        let limit = standby.renew_every();
        let asked = tokio::time::timeout(limit, store.acquire()).await;
        match asked.unwrap_or_else(|_| Err(ServiceError::timed_out("asking for the lease", limit))) {
            Ok(Some(epoch)) => {
                LeaseAnswered.emit(telemetry);
                fence.held(sent, standby.lease);
                return Some(epoch);
            }
            Ok(None) => LeaseAnswered.emit(telemetry),
            Err(error) => LeaseUnreachable { error: &error }.emit(telemetry),
        }
        tokio::select! {
            () = tokio::time::sleep(standby.retry_every()) => {}
            () = shutdown.cancelled() => return None,
        }
    }
}
