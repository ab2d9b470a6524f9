//! Consuming an Iggy topic as a consumer-group member, committing offsets
//! only after the sink confirmed.
//!
//! Ferry polls each partition explicitly from its own cursor rather than
//! asking the server for "next": the server's "next" starts after the last
//! *committed* offset, which would hand back batches still in flight. Which
//! partitions it walks is the link's to say: on 0.8 all of them (a partition
//! another member owns polls empty), on 0.9 the group's assignment, learned
//! again whenever the server fences a poll or a commit, and every second
//! while there is nothing to read. After a reconnect (new member)
//! the cursors are forgotten and each partition resumes after its committed
//! offset; anything re-read is written idempotently.

use std::collections::HashMap;
use std::time::{Duration, Instant};

mod lag;
mod message;
mod unreadable;

pub use lag::watch_lag;
pub use message::{message_id_parts, to_record};
use unreadable::{PollStart, unreadable_partition};

use super::{Polled, Source};
use crate::config::{IggySourceConfig, StartPosition};
use crate::error::ServiceError;
use crate::iggy_link::{self, IggyLink, Reader, Session, Start, Stored, TopicOpener};
use crate::record::{Batch, BatchSource, IggyTopic};
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::{IggyConnected, OffsetCommitted, PartitionsAssigned};

/// How often a member that found nothing to read asks the group again which
/// partitions are its own (0.9 hands partitions over by a sync, which a
/// member that polls nothing would otherwise never send).
const ASSIGNMENT_REFRESH: Duration = Duration::from_secs(1);

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
    /// The topic's partitions, read on each (re)connect; never empty once
    /// joined.
    all_partitions: Vec<u32>,
    /// The partitions this member reads: all of them on 0.8 (where the
    /// server answers a poll of another member's partition with nothing),
    /// the group's assignment on 0.9.
    partitions: Vec<u32>,
    /// When `partitions` was last learned.
    assigned_at: Instant,
    /// Whether to learn `partitions` again before the next poll.
    reassign: bool,
    /// Which partition the next poll tries first.
    turn: usize,
    /// The next offset to poll, per partition polled since connecting.
    cursors: HashMap<u32, u64>,
    telemetry: PipelineTelemetry,
}

impl IggySource {
    pub fn new(config: IggySourceConfig, telemetry: &PipelineTelemetry) -> Result<Self, ServiceError> {
        Ok(Self {
            link: IggyLink::new(config.connection()),
            topic: TopicOpener::new(&config.stream, &config.topic, config.create),
            config,
            all_partitions: Vec::new(),
            partitions: Vec::new(),
            assigned_at: Instant::now(),
            reassign: false,
            turn: 0,
            cursors: HashMap::new(),
            telemetry: telemetry.clone(),
        })
    }

    /// The connected session; on a fresh connection, joins the group first,
    /// and learns this member's partitions again when they may have moved.
    async fn ready(&mut self) -> Result<&Session, ServiceError> {
        let (_, fresh) = self.link.session().await?;
        if fresh && let Err(error) = self.join().await {
            self.link.reset().await;
            return Err(error);
        }
        if self.reassign
            && let Err(error) = self.assign().await
        {
            return Err(self.failed(error).await);
        }
        Ok(self.link.session().await?.0)
    }

    /// Reads the partitions, creates the group if missing (positioning it
    /// per `start`) and joins it.
    async fn join(&mut self) -> Result<(), ServiceError> {
        let topic_name = self.topic.name();
        let (session, _) = self.link.session().await?;
        let topic = self.topic.open(session).await?;
        let (stream, group) = (&self.config.stream, &self.config.consumer_group);
        let created = session.ensure_group(stream, &self.config.topic, group).await?;
        session.join_group(stream, &self.config.topic, group).await?;
        if created && self.config.start == StartPosition::Latest {
            // A new group starting at "latest" begins after what is there now.
            for partition in &topic.details.partitions {
                let Some(last) = partition.last_offset() else { continue };
                if let Err(error) = session.store_offset(group, stream, &self.config.topic, partition.id, last).await {
                    tracing::warn!(
                        partition = partition.id,
                        "cannot position the new group at the latest offset: {error}"
                    );
                }
            }
        }
        IggyConnected { generation: session.generation().as_str() }.emit(&self.telemetry);
        tracing::info!(topic = %topic_name, group = %group, created, "joined consumer group");
        self.all_partitions = topic.partitions;
        self.cursors.clear();
        self.assign().await
    }

    /// Learns which partitions this member reads now. Cursors of partitions
    /// it no longer reads are forgotten: whoever reads them next resumes
    /// after the group's stored offset.
    async fn assign(&mut self) -> Result<(), ServiceError> {
        let (session, _) = self.link.session().await?;
        let config = &self.config;
        let partitions = session
            .assigned_partitions(&config.stream, &config.topic, &config.consumer_group, &self.all_partitions)
            .await?;
        self.reassign = false;
        self.assigned_at = Instant::now();
        if partitions != self.partitions {
            self.cursors.retain(|partition, _| partitions.contains(partition));
            self.partitions = partitions;
            PartitionsAssigned { partitions: &self.partitions }.emit(&self.telemetry);
            tracing::info!(topic = %self.topic.name(), partitions = ?self.partitions, "reading partitions");
        }
        Ok(())
    }

    /// Where the last poll of `partition` started, for an error message.
    async fn poll_start(&mut self, partition: u32) -> PollStart {
        if let Some(&offset) = self.cursors.get(&partition) {
            return PollStart::Cursor(offset);
        }
        let Ok((session, _)) = self.link.session().await else { return PollStart::Unknown };
        let config = &self.config;
        match session.stored_offset(&config.consumer_group, &config.stream, &config.topic, partition).await {
            Ok(stored) => PollStart::AfterStored(stored),
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
            let start = match self.cursors.get(&partition) {
                Some(&offset) => Start::At(offset),
                None => Start::AfterStored,
            };
            let (session, _) = self.link.session().await?;
            let config = &self.config;
            let reader = Reader::Group(&config.consumer_group);
            let polled = session.poll(&config.stream, &config.topic, partition, reader, start, count).await;
            let messages = match polled {
                Ok(iggy_link::Polled::Messages(messages)) => messages,
                Ok(iggy_link::Polled::NotOwned) => {
                    // The group moved this partition: learn the assignment again.
                    self.reassign = true;
                    self.cursors.remove(&partition);
                    continue;
                }
                Ok(iggy_link::Polled::Unreadable(cause)) => {
                    let start = self.poll_start(partition).await;
                    return Err(ServiceError::fatal(unreadable_partition(&topic_name, partition, start), cause));
                }
                Err(error) => return Err(self.failed(error).await),
            };
            let Some(last) = messages.last() else { continue };
            let last_offset = last.offset;
            self.cursors.insert(partition, last_offset + 1);
            let records = messages.iter().map(|message| to_record(message, partition, format)).collect();
            return Ok(Some(Polled {
                batch: Batch { source: batch_source, records },
                checkpoint: IggyCheckpoint { partition, offset: last_offset },
            }));
        }
        if self.assigned_at.elapsed() >= ASSIGNMENT_REFRESH {
            self.reassign = true;
        }
        Ok(None)
    }

    async fn commit(&mut self, checkpoint: IggyCheckpoint) -> Result<(), ServiceError> {
        self.ready().await?;
        let (session, _) = self.link.session().await?;
        let config = &self.config;
        let IggyCheckpoint { partition, offset } = checkpoint;
        let stored =
            session.store_offset(&config.consumer_group, &config.stream, &config.topic, partition, offset).await;
        match stored {
            Ok(Stored::Stored) => {
                OffsetCommitted { partition, offset }.emit(&self.telemetry);
                Ok(())
            }
            Ok(Stored::NotOwned) => {
                // The group moved the partition to another member before this
                // commit; it resumes from the last stored offset and rewrites
                // the same documents, which idempotent writes absorb.
                tracing::info!(partition, "partition reassigned before commit; its new owner resumes it");
                self.cursors.remove(&partition);
                self.reassign = true;
                Ok(())
            }
            Err(error) => Err(self.failed(error).await),
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
        if let Ok((session, false)) = self.link.session().await {
            let config = &self.config;
            let _ = session.leave_group(&config.stream, &config.topic, &config.consumer_group).await;
        }
        self.link.reset().await;
    }
}
