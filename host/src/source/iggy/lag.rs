//! How far behind a consumer group is, read beside the data path: each
//! partition's last offset against the group's committed one.
//!
//! Read by a probe of its own rather than from the polls, so that a stuck
//! pipeline shows its lag growing: a pipeline that cannot write stops
//! polling, and polls would stop telling. Reading a group's offsets needs
//! no membership, so the probe uses a connection of its own and never
//! disturbs the group.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::IggySourceConfig;
use crate::error::{ServiceError, error_chain};
use crate::iggy_link::{IggyLink, Session};
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::{PartitionHead, PartitionHeads};

/// How often the lag is read.
pub const LAG_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Reads the group's lag every [`LAG_PROBE_INTERVAL`] until `stop` fires.
/// A failed read is logged (at debug: the data path reports the same
/// outage) and tried again at the next turn.
pub async fn watch_lag(config: IggySourceConfig, telemetry: PipelineTelemetry, stop: CancellationToken) {
    let mut link = IggyLink::new(config.connection());
    loop {
        let read = match link.session().await {
            Ok((session, _)) => read_lag(session, &config).await,
            Err(error) => Err(error),
        };
        match read {
            Ok(heads) => PartitionHeads { partitions: &heads }.emit(&telemetry),
            Err(error) => {
                tracing::debug!("cannot read the consumer group's lag: {}", error_chain(&error));
                link.reset().await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(LAG_PROBE_INTERVAL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Each partition's last offset and the group's committed offset.
async fn read_lag(session: &Session, config: &IggySourceConfig) -> Result<Vec<PartitionHead>, ServiceError> {
    let Some(topic) = session.topic(&config.stream, &config.topic).await? else {
        return Ok(Vec::new());
    };
    let mut heads = Vec::with_capacity(topic.partitions.len());
    for partition in &topic.partitions {
        // A group that has not committed here yet (or does not exist yet)
        // answers nothing.
        let committed =
            session.stored_offset(&config.consumer_group, &config.stream, &config.topic, partition.id).await?;
        heads.push(PartitionHead { partition: partition.id, head: partition.last_offset(), committed });
    }
    Ok(heads)
}
