//! How long a change stream pipeline can be down before a restart finds its
//! history gone: the oldest entry still in the oplog, read every so often,
//! against the stored resume point (the status does the subtraction).
//!
//! MongoDB keeps the oldest entry's time itself and answers it in
//! `serverStatus`'s `oplog` section (`earliestOptime`) without reading the
//! oplog. A server without that section is asked for the first document of
//! `local.oplog.rs` by `$natural` order instead. That read can be a scan
//! (SecantusDB's is: 2.4 s at 100 000 entries), so the probe waits a hundred
//! times as long as its last read took, keeping to about 1 % of the
//! server's time; otherwise a busy server's change stream slows for it.
//!
//! A server that keeps no oplog, or a user not allowed to read it, leaves the
//! headroom unknown: that is said once, then the probe stops.

use std::time::{Duration, Instant};

use bson::{Document, doc};
use mongodb::Client;
use tokio_util::sync::CancellationToken;

use crate::error::{ServiceError, error_chain};
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::OplogRead;

/// The least time between two reads of the oldest entry. It moves slowly.
const OPLOG_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// A read that took the server this long waits this many times as long
/// before the next.
const PROBE_SPACING: u32 = 100;

/// Reads the oplog's oldest entry, paced by [`pause_after`], until `stop`
/// fires.
pub async fn watch_oplog(client: Client, telemetry: PipelineTelemetry, stop: CancellationToken) {
    loop {
        let started = Instant::now();
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
            () = tokio::time::sleep(pause_after(started.elapsed())) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// How long to wait after a read that took `read`: the interval, or a
/// hundred times the read when that is longer.
fn pause_after(read: Duration) -> Duration {
    OPLOG_PROBE_INTERVAL.max(read.saturating_mul(PROBE_SPACING))
}

/// The cluster time (seconds) of the oplog's oldest entry.
async fn oldest_entry(client: &Client) -> Result<Option<u32>, ServiceError> {
    let status = client.database("admin").run_command(doc! { "serverStatus": 1, "oplog": 1 }).await;
    // A user without the serverStatus privilege may still read the oplog.
    if let Some(earliest) = status.ok().and_then(|status| earliest_optime(&status)) {
        return Ok(Some(earliest));
    }
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

/// `oplog.earliestOptime` of a `serverStatus` reply, if the server keeps it.
fn earliest_optime(status: &Document) -> Option<u32> {
    Some(status.get_document("oplog").ok()?.get_timestamp("earliestOptime").ok()?.time)
}

#[cfg(test)]
mod tests {
    use bson::Timestamp;

    use super::*;

    #[test]
    fn the_earliest_optime_is_read_from_mongodbs_oplog_section() {
        let status = doc! {
            "ok": 1.0,
            "oplog": {
                "latestOptime": Timestamp { time: 1_800_000_500, increment: 3 },
                "earliestOptime": Timestamp { time: 1_800_000_000, increment: 1 },
            },
        };
        assert_eq!(earliest_optime(&status), Some(1_800_000_000));
    }

    #[test]
    fn a_reply_without_the_section_leaves_the_oplog_to_be_read() {
        assert_eq!(earliest_optime(&doc! { "ok": 1.0, "host": "secantus" }), None);
        assert_eq!(
            earliest_optime(&doc! { "ok": 1.0, "oplog": { "latestOptime": Timestamp { time: 5, increment: 1 } } }),
            None
        );
    }

    #[test]
    fn a_quick_read_waits_the_interval_and_a_slow_one_a_hundred_times_itself() {
        assert_eq!(pause_after(Duration::from_millis(3)), OPLOG_PROBE_INTERVAL);
        assert_eq!(pause_after(Duration::from_millis(2_400)), Duration::from_secs(240));
    }
}
