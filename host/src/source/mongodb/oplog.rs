//! How long a change stream pipeline can be down before a restart finds its
//! history gone: the oldest entry still in the oplog, read every so often,
//! against the stored resume point (the status does the subtraction).
//!
//! The oplog is `local.oplog.rs`, a capped collection in insertion order;
//! its first document by `$natural` is the oldest. A server that keeps
//! none, or a user not allowed to read it, leaves the headroom unknown:
//! that is said once, then the probe stops.

use std::time::Duration;

use bson::{Document, doc};
use mongodb::Client;
use tokio_util::sync::CancellationToken;

use crate::error::{ServiceError, error_chain};
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::OplogRead;

/// How often the oplog's oldest entry is read. It moves slowly.
pub const OPLOG_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// Reads the oplog's oldest entry every [`OPLOG_PROBE_INTERVAL`] until
/// `stop` fires.
pub async fn watch_oplog(client: Client, telemetry: PipelineTelemetry, stop: CancellationToken) {
    loop {
        match oldest_entry(&client).await {
            Ok(Some(oldest)) => OplogRead { oldest }.emit(&telemetry),
            Ok(None) => {
                tracing::warn!("the oplog holds no entries to read; oplog headroom is not known");
                return;
            }
            Err(error) if error.transient => {
                tracing::debug!("cannot read the oplog's oldest entry: {}", error_chain(&error));
            }
            Err(error) => {
                tracing::warn!("cannot read the oplog; oplog headroom is not known: {}", error_chain(&error));
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(OPLOG_PROBE_INTERVAL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// The cluster time (seconds) of the oplog's oldest entry.
async fn oldest_entry(client: &Client) -> Result<Option<u32>, ServiceError> {
    let what = "reading the oldest oplog entry (local.oplog.rs)";
    let oldest = client
        .database("local")
        .collection::<Document>("oplog.rs")
        .find_one(doc! {})
        .sort(doc! { "$natural": 1 })
        .projection(doc! { "ts": 1 })
        .await
        .map_err(|error| ServiceError::mongo(what, error))?;
    Ok(oldest.and_then(|entry| entry.get_timestamp("ts").ok()).map(|ts| ts.time))
}
