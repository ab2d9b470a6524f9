//! What the destination topic itself says about how far a MongoDB source
//! got, plus a small checkpoint topic for the stretches where nothing was
//! produced (quiet or filtered streams, transforms dropping everything).
//!
//! Every produced message carries its change's position in headers, so the
//! last message of each partition tells exactly what that partition has:
//! the data and the position can never disagree. A checkpoint is written to
//! `<topic>-positions` only after its batch is committed, i.e. after all its
//! messages were produced, so it is never ahead of the data; it lets a
//! restart after hours of filtered-out changes resume from a fresh point.

use std::time::{Duration, Instant};

use bytes::Bytes;
use iggy::prelude::{Consumer, IggyClient, IggyMessage, MessageClient, Partitioning, PollingStrategy, TopicClient};

use super::position::ChangePosition;
use crate::config::IggyConnection;
use crate::error::ServiceError;
use crate::iggy_client::Headers;
use crate::iggy_client::{IggyLink, ensure_topic, named};

/// How often a checkpoint is written while batches keep committing.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// The checkpoint topic that goes with `topic`.
pub fn checkpoint_topic(topic: &str) -> String {
    format!("{topic}-positions")
}

pub struct PositionStore {
    link: IggyLink,
    stream: String,
    topic: String,
    saved_at: Option<Instant>,
    checkpoint_ready: bool,
}

impl PositionStore {
    pub fn new(connection: IggyConnection, stream: &str, topic: &str) -> Self {
        Self {
            link: IggyLink::new(connection),
            stream: stream.to_owned(),
            topic: topic.to_owned(),
            saved_at: None,
            checkpoint_ready: false,
        }
    }

    /// Reaches the Iggy server the positions are kept on.
    pub async fn connect(&mut self) -> Result<(), ServiceError> {
        self.link.client().await.map(|_| ())
    }

    /// Where to resume: the checkpoint if there is one (partitions ahead of
    /// it are recognised by the sink and not written twice), else the
    /// earliest last position among the partitions, else nothing stored.
    pub async fn load(&mut self) -> Result<Option<ChangePosition>, ServiceError> {
        let (client, _) = self.link.client().await?;
        let checkpoint_topic = checkpoint_topic(&self.topic);
        let checkpoint = last_messages(client, &self.stream, &checkpoint_topic)
            .await?
            .into_iter()
            .filter_map(|(_, message)| ChangePosition::from_json(std::str::from_utf8(&message.payload).ok()?))
            .next();
        if checkpoint.is_some() {
            return Ok(checkpoint);
        }
        let positions = partition_positions(client, &self.stream, &self.topic).await?;
        Ok(positions.into_iter().filter_map(|(_, position)| position).reduce(|earliest, position| {
            match earliest.relation_to(&position) {
                super::position::Relation::Ahead => position,
                _ => earliest,
            }
        }))
    }

    /// Records that everything up to `position` is produced. Written at most
    /// every few seconds unless `force`d (at shutdown).
    pub async fn save(&mut self, position: &ChangePosition, pipeline: &str, force: bool) -> Result<(), ServiceError> {
        if !force && self.saved_at.is_some_and(|saved| saved.elapsed() < CHECKPOINT_EVERY) {
            return Ok(());
        }
        let topic = checkpoint_topic(&self.topic);
        let what = format!("saving the change stream position to {}/{topic}", self.stream);
        let result = async {
            let (client, _) = self.link.client().await?;
            if !self.checkpoint_ready {
                ensure_topic(client, &self.stream, &topic, 1).await?;
                self.checkpoint_ready = true;
            }
            let mut headers = Headers::default();
            headers.add("ferry-pipeline", pipeline);
            let message = headers
                .message(None, Bytes::from(position.to_json()))
                .map_err(|error| ServiceError::iggy(what.clone(), error))?;
            client
                .send_messages(&named(&self.stream)?, &named(&topic)?, &Partitioning::balanced(), &mut [message])
                .await
                .map_err(|error| ServiceError::iggy(what.clone(), error))
        }
        .await;
        match result {
            Ok(()) => {
                self.saved_at = Some(Instant::now());
                Ok(())
            }
            Err(error) => {
                if error.transient {
                    self.link.reset().await;
                    self.checkpoint_ready = false;
                }
                Err(error)
            }
        }
    }
}

/// The position in the last message of each partition of a topic (`None`
/// for an empty partition, or a message without one). No topic, no entries.
pub async fn partition_positions(
    client: &IggyClient,
    stream: &str,
    topic: &str,
) -> Result<Vec<(u32, Option<ChangePosition>)>, ServiceError> {
    Ok(last_messages(client, stream, topic)
        .await?
        .into_iter()
        .map(|(partition, message)| {
            let position =
                message.user_headers_map().ok().flatten().and_then(|headers| ChangePosition::from_headers(&headers));
            (partition, position)
        })
        .collect())
}

/// The last message of each non-empty partition.
async fn last_messages(
    client: &IggyClient,
    stream: &str,
    topic: &str,
) -> Result<Vec<(u32, IggyMessage)>, ServiceError> {
    let what = || format!("reading the last messages of {stream}/{topic}");
    let (stream_id, topic_id) = (named(stream)?, named(topic)?);
    let Some(details) =
        client.get_topic(&stream_id, &topic_id).await.map_err(|error| ServiceError::iggy(what(), error))?
    else {
        return Ok(Vec::new());
    };
    let reader = Consumer::new(named("ferry-position-reader")?);
    let mut last = Vec::new();
    for partition in details.partitions.iter().filter(|partition| partition.messages_count > 0) {
        let polled = client
            .poll_messages(&stream_id, &topic_id, Some(partition.id), &reader, &PollingStrategy::last(), 1, false)
            .await
            .map_err(|error| ServiceError::iggy(what(), error))?;
        if let Some(message) = polled.messages.into_iter().last() {
            last.push((partition.id, message));
        }
    }
    Ok(last)
}
