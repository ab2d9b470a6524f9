//! Consuming an Iggy topic as a consumer-group member, committing offsets
//! only after the sink confirmed.
//!
//! Ferry polls each partition explicitly from its own cursor rather than
//! asking the server for "next": the server's "next" starts after the last
//! *committed* offset, which would hand back batches still in flight. A
//! partition this member does not own polls empty, so walking all partitions
//! finds the ones the group assigned to it. After a reconnect (new member)
//! the cursors are forgotten and each partition resumes after its committed
//! offset; anything re-read is written idempotently.

use std::collections::HashMap;
use std::time::Duration;

use iggy::prelude::{
    Consumer, ConsumerGroupClient, ConsumerOffsetClient, Identifier, IggyClient, IggyError, MessageClient,
    PollingStrategy,
};

mod lag;
mod message;
mod unreadable;

pub use lag::watch_lag;
pub use message::{KEY_HEADER, message_id_parts, to_record};
use unreadable::{PollStart, unreadable_partition};

use super::{Polled, Source};
use crate::config::{IggySourceConfig, StartPosition};
use crate::error::ServiceError;
use crate::iggy_client::{IggyLink, TopicOpener, named};
use crate::record::{Batch, BatchSource, IggyTopic};
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::{OffsetCommitted, PartitionsAssigned};

/// The last offset of a written batch in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IggyCheckpoint {
    pub partition: u32,
    pub offset: u64,
}

pub struct IggySource {
    config: IggySourceConfig,
    link: IggyLink,
    topic: TopicOpener,
    ids: Ids,
    /// The topic's partitions, read on each (re)connect; never empty once
    /// joined.
    partitions: Vec<u32>,
    /// Which partition the next poll tries first.
    turn: usize,
    /// The next offset to poll, per partition polled since connecting.
    cursors: HashMap<u32, u64>,
    telemetry: PipelineTelemetry,
}

struct Ids {
    stream: Identifier,
    topic: Identifier,
    group: Consumer,
}

impl IggySource {
    pub fn new(config: IggySourceConfig, telemetry: &PipelineTelemetry) -> Result<Self, ServiceError> {
        let ids = Ids {
            stream: named(&config.stream)?,
            topic: named(&config.topic)?,
            group: Consumer::group(named(&config.consumer_group)?),
        };
        Ok(Self {
            link: IggyLink::new(config.connection()),
            topic: TopicOpener::new(&config.stream, &config.topic, config.create),
            config,
            ids,
            partitions: Vec::new(),
            turn: 0,
            cursors: HashMap::new(),
            telemetry: telemetry.clone(),
        })
    }

    /// The connected client; on a fresh connection, joins the group first.
    async fn ready(&mut self) -> Result<&IggyClient, ServiceError> {
        let (_, fresh) = self.link.client().await?;
        if fresh && let Err(error) = self.join().await {
            self.link.reset().await;
            return Err(error);
        }
        Ok(self.link.client().await?.0)
    }

    /// Reads the partitions, creates the group if missing (positioning it
    /// per `start`) and joins it.
    async fn join(&mut self) -> Result<(), ServiceError> {
        let topic_name = self.topic.name();
        let (client, _) = self.link.client().await?;
        let topic = self.topic.open(client).await?;
        let group = &self.config.consumer_group;
        let what = format!("setting up consumer group {group:?} on {topic_name}");
        let exists = client
            .get_consumer_group(&self.ids.stream, &self.ids.topic, &self.ids.group.id)
            .await
            .map_err(|error| ServiceError::iggy(what.clone(), error))?
            .is_some();
        let created = !exists
            && match client.create_consumer_group(&self.ids.stream, &self.ids.topic, group).await {
                Ok(_) => true,
                Err(IggyError::ConsumerGroupNameAlreadyExists(..)) => false,
                Err(error) => return Err(ServiceError::iggy(what, error)),
            };
        client
            .join_consumer_group(&self.ids.stream, &self.ids.topic, &self.ids.group.id)
            .await
            .map_err(|error| ServiceError::iggy(what.clone(), error))?;
        if created && self.config.start == StartPosition::Latest {
            // A new group starting at "latest" begins after what is there now.
            for partition in topic.details.partitions.iter().filter(|partition| partition.messages_count > 0) {
                let stored = client
                    .store_consumer_offset(
                        &self.ids.group,
                        &self.ids.stream,
                        &self.ids.topic,
                        Some(partition.id),
                        partition.current_offset,
                    )
                    .await;
                if let Err(error) = stored {
                    tracing::warn!(partition = partition.id, %error, "cannot position the new group at the latest offset");
                }
            }
        }
        self.partitions = topic.partitions;
        self.cursors.clear();
        PartitionsAssigned { partitions: &self.partitions }.emit(&self.telemetry);
        tracing::info!(topic = %topic_name, group = %group, created, partitions = self.partitions.len(), "joined consumer group");
        Ok(())
    }

    /// Where the last poll of `partition` started, for an error message.
    async fn poll_start(&mut self, partition: u32) -> PollStart {
        if let Some(&offset) = self.cursors.get(&partition) {
            return PollStart::Cursor(offset);
        }
        let Ok((client, _)) = self.link.client().await else { return PollStart::Unknown };
        let stored =
            client.get_consumer_offset(&self.ids.group, &self.ids.stream, &self.ids.topic, Some(partition)).await;
        match stored {
            Ok(info) => PollStart::AfterStored(info.map(|info| info.stored_offset)),
            Err(_) => PollStart::Unknown,
        }
    }

    async fn failed(&mut self, error: ServiceError) -> ServiceError {
        if error.transient {
            self.link.reset().await;
        }
        error
    }
}

impl Source for IggySource {
    type Checkpoint = IggyCheckpoint;

    async fn connect(&mut self) -> Result<(), ServiceError> {
        self.ready().await.map(|_| ())
    }

    async fn poll(&mut self) -> Result<Option<Polled<IggyCheckpoint>>, ServiceError> {
        let topic_name = self.topic.name();
        let count = self.config.batch_size;
        let format = self.config.format;
        let batch_source =
            BatchSource::Iggy(IggyTopic { stream: self.config.stream.clone(), topic: self.config.topic.clone() });
        self.ready().await?;
        for _ in 0..self.partitions.len() {
            let partition = self.partitions[self.turn % self.partitions.len()];
            self.turn = self.turn.wrapping_add(1);
            let strategy = match self.cursors.get(&partition) {
                Some(&offset) => PollingStrategy::offset(offset),
                None => PollingStrategy::next(),
            };
            let (client, _) = self.link.client().await?;
            let polled = client
                .poll_messages(
                    &self.ids.stream,
                    &self.ids.topic,
                    Some(partition),
                    &self.ids.group,
                    &strategy,
                    count,
                    false,
                )
                .await;
            let polled = match polled {
                Ok(polled) => polled,
                Err(error @ IggyError::InvalidOffset(_)) => {
                    let start = self.poll_start(partition).await;
                    return Err(ServiceError::iggy(unreadable_partition(&topic_name, partition, start), error));
                }
                Err(error) => {
                    let error = ServiceError::iggy(format!("polling {topic_name} partition {partition}"), error);
                    return Err(self.failed(error).await);
                }
            };
            let Some(last) = polled.messages.last() else { continue };
            let last_offset = last.header.offset;
            self.cursors.insert(partition, last_offset + 1);
            let records = polled.messages.iter().map(|message| to_record(message, partition, format)).collect();
            return Ok(Some(Polled {
                batch: Batch { source: batch_source, records },
                checkpoint: IggyCheckpoint { partition, offset: last_offset },
            }));
        }
        Ok(None)
    }

    async fn commit(&mut self, checkpoint: IggyCheckpoint) -> Result<(), ServiceError> {
        let topic_name = self.topic.name();
        self.ready().await?;
        let (client, _) = self.link.client().await?;
        let stored = client
            .store_consumer_offset(
                &self.ids.group,
                &self.ids.stream,
                &self.ids.topic,
                Some(checkpoint.partition),
                checkpoint.offset,
            )
            .await;
        match stored {
            Ok(()) => {
                OffsetCommitted { partition: checkpoint.partition, offset: checkpoint.offset }.emit(&self.telemetry);
                Ok(())
            }
            Err(IggyError::NotResolvedConsumer(_)) => {
                // The group moved the partition to another member before this
                // commit; it resumes from the last stored offset and rewrites
                // the same documents, which idempotent writes absorb.
                tracing::info!(
                    partition = checkpoint.partition,
                    "partition reassigned before commit; its new owner resumes it"
                );
                self.cursors.remove(&checkpoint.partition);
                Ok(())
            }
            Err(error) => {
                let what =
                    format!("committing {topic_name} partition {} offset {}", checkpoint.partition, checkpoint.offset);
                Err(self.failed(ServiceError::iggy(what, error)).await)
            }
        }
    }

    /// A consumer offset is per partition: a later one there covers it.
    fn covers(later: &IggyCheckpoint, earlier: &IggyCheckpoint) -> bool {
        later.partition == earlier.partition && later.offset >= earlier.offset
    }

    fn idle_pause(&self) -> Duration {
        self.config.poll_interval
    }

    async fn close(&mut self) {
        if let Ok((client, false)) = self.link.client().await {
            let _ = client.leave_consumer_group(&self.ids.stream, &self.ids.topic, &self.ids.group.id).await;
        }
        self.link.reset().await;
    }
}
