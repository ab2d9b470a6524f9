//! How far behind a consumer group is, read beside the data path: each
//! partition's last offset against the group's committed one.
//!
//! Read by a probe of its own rather than from the polls, so that a stuck
//! pipeline shows its lag growing: a pipeline that cannot write stops
//! polling, and polls would stop telling. Reading a group's offsets needs
//! no membership, so the probe uses a connection of its own and never
//! disturbs the group.

use std::time::Duration;

use iggy::prelude::{Consumer, ConsumerOffsetClient, IggyClient, TopicClient};
use tokio_util::sync::CancellationToken;

use crate::config::IggySourceConfig;
use crate::error::{ServiceError, error_chain};
use crate::iggy_client::{IggyLink, named};
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
        let read = match link.client().await {
            Ok((client, _)) => read_lag(client, &config).await,
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
async fn read_lag(client: &IggyClient, config: &IggySourceConfig) -> Result<Vec<PartitionHead>, ServiceError> {
    let what = || format!("reading the lag of group {:?} on {}/{}", config.consumer_group, config.stream, config.topic);
    let (stream, topic) = (named(&config.stream)?, named(&config.topic)?);
    let group = Consumer::group(named(&config.consumer_group)?);
    let Some(details) = client.get_topic(&stream, &topic).await.map_err(|error| ServiceError::iggy(what(), error))?
    else {
        return Ok(Vec::new());
    };
    let mut heads = Vec::with_capacity(details.partitions.len());
    for partition in &details.partitions {
        // A group that has not committed here yet (or does not exist yet)
        // answers nothing.
        let committed = client
            .get_consumer_offset(&group, &stream, &topic, Some(partition.id))
            .await
            .map_err(|error| ServiceError::iggy(what(), error))?
            .map(|offset| offset.stored_offset);
        let head = (partition.messages_count > 0).then_some(partition.current_offset);
        heads.push(PartitionHead { partition: partition.id, head, committed });
    }
    Ok(heads)
}
