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

use super::position::ChangePosition;
use crate::config::IggyConnection;
use crate::error::ServiceError;
use crate::iggy_link::{Headers, IggyLink, Session};
use crate::standby::Fence;

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
    /// With standbys: the lease this process must hold to save.
    fence: Option<Fence>,
}

impl PositionStore {
    pub fn new(connection: IggyConnection, stream: &str, topic: &str) -> Self {
        Self {
            link: IggyLink::new(connection),
            stream: stream.to_owned(),
            topic: topic.to_owned(),
            saved_at: None,
            checkpoint_ready: false,
            fence: None,
        }
    }

    /// Saves only while `fence` proves the lease held (see `crate::standby`).
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Reaches the Iggy server the positions are kept on.
    pub async fn connect(&mut self) -> Result<(), ServiceError> {
        self.link.session().await.map(|_| ())
    }

    /// Where to resume: the checkpoint if there is one (partitions ahead of
    /// it are recognised by the sink and not written twice), else the
    /// earliest last position among the partitions, else nothing stored.
    pub async fn load(&mut self) -> Result<Option<ChangePosition>, ServiceError> {
        let (session, _) = self.link.session().await?;
        let checkpoint_topic = checkpoint_topic(&self.topic);
        let checkpoint = session
            .last_messages(&self.stream, &checkpoint_topic)
            .await?
            .into_iter()
            .filter_map(|(_, message)| ChangePosition::from_json(std::str::from_utf8(&message.payload).ok()?))
            .next();
        if checkpoint.is_some() {
            return Ok(checkpoint);
        }
        let positions = partition_positions(session, &self.stream, &self.topic).await?;
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
            let (session, _) = self.link.session().await?;
            if !self.checkpoint_ready {
                session.ensure_topic(&self.stream, &topic, 1).await?;
                self.checkpoint_ready = true;
            }
            let mut headers = Headers::default();
            headers.add("ferry-pipeline", pipeline);
            let message = headers
                .message(0, Bytes::from(position.to_json()))
                .map_err(|error| ServiceError::fatal(what.clone(), error))?;
            if let Some(fence) = &self.fence {
                fence.check(|| what.clone())?;
            }
            session.send(&self.stream, &topic, None, vec![message]).await
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
    session: &Session,
    stream: &str,
    topic: &str,
) -> Result<Vec<(u32, Option<ChangePosition>)>, ServiceError> {
    Ok(session
        .last_messages(stream, topic)
        .await?
        .into_iter()
        .map(|(partition, message)| (partition, ChangePosition::from_message(&message)))
        .collect())
}
