//! What Ferry asks of an Iggy server, in Ferry's own types, and the one
//! place that picks the implementation of the generation the server speaks.
//!
//! Every method names streams, topics and groups by name and says in its
//! errors what it was doing. Outcomes that callers act on (a partition that
//! moved to another member, messages a server cannot read back) are values,
//! not errors, so that no caller needs to know a generation's error codes.

use super::generation::Generation;
use super::message::Message;
use super::types::{Polled, Reader, Start, Stored, Topic};
use super::{v0_8, v0_9};
use crate::error::ServiceError;

/// A logged-in session with one server, in the generation it speaks.
pub enum Session {
    V0_8(v0_8::Session),
    V0_9(v0_9::Session),
}

impl Session {
    pub fn generation(&self) -> Generation {
        match self {
            Session::V0_8(_) => Generation::V0_8,
            Session::V0_9(_) => Generation::V0_9,
        }
    }

    /// Creates `stream` and `topic` (with `partitions`) unless they exist.
    pub async fn ensure_topic(&self, stream: &str, topic: &str, partitions: u32) -> Result<(), ServiceError> {
        match self {
            Session::V0_8(session) => session.ensure_topic(stream, topic, partitions).await,
            Session::V0_9(session) => session.ensure_topic(stream, topic, partitions).await,
        }
    }

    /// The topic, or `None` when it (or its stream) does not exist.
    pub async fn topic(&self, stream: &str, topic: &str) -> Result<Option<Topic>, ServiceError> {
        match self {
            Session::V0_8(session) => session.topic(stream, topic).await,
            Session::V0_9(session) => session.topic(stream, topic).await,
        }
    }

    /// Creates the consumer group unless it exists; true if this call made it.
    pub async fn ensure_group(&self, stream: &str, topic: &str, group: &str) -> Result<bool, ServiceError> {
        match self {
            Session::V0_8(session) => session.ensure_group(stream, topic, group).await,
            Session::V0_9(session) => session.ensure_group(stream, topic, group).await,
        }
    }

    /// Joins the group as a member (the membership lasts as long as the session).
    pub async fn join_group(&self, stream: &str, topic: &str, group: &str) -> Result<(), ServiceError> {
        match self {
            Session::V0_8(session) => session.join_group(stream, topic, group).await,
            Session::V0_9(session) => session.join_group(stream, topic, group).await,
        }
    }

    pub async fn leave_group(&self, stream: &str, topic: &str, group: &str) -> Result<(), ServiceError> {
        match self {
            Session::V0_8(session) => session.leave_group(stream, topic, group).await,
            Session::V0_9(session) => session.leave_group(stream, topic, group).await,
        }
    }

    /// The partitions of `all` this member may read now. On 0.8 the server
    /// answers a member's poll of another member's partition with nothing,
    /// so that is all of them; 0.9 says which.
    pub async fn assigned_partitions(
        &self,
        stream: &str,
        topic: &str,
        group: &str,
        all: &[u32],
    ) -> Result<Vec<u32>, ServiceError> {
        match self {
            Session::V0_8(_) => Ok(all.to_vec()),
            Session::V0_9(session) => session.assigned_partitions(stream, topic, group).await,
        }
    }

    /// Reads up to `count` messages of one partition.
    pub async fn poll(
        &self,
        stream: &str,
        topic: &str,
        partition: u32,
        reader: Reader<'_>,
        start: Start,
        count: u32,
    ) -> Result<Polled, ServiceError> {
        match self {
            Session::V0_8(session) => session.poll(stream, topic, partition, reader, start, count).await,
            Session::V0_9(session) => session.poll(stream, topic, partition, reader, start, count).await,
        }
    }

    /// Appends `messages` to `partition`, or spreads them over the
    /// partitions when it is `None`.
    pub async fn send(
        &self,
        stream: &str,
        topic: &str,
        partition: Option<u32>,
        messages: Vec<Message>,
    ) -> Result<(), ServiceError> {
        match self {
            Session::V0_8(session) => session.send(stream, topic, partition, messages).await,
            Session::V0_9(session) => session.send(stream, topic, partition, messages).await,
        }
    }

    /// Stores the group's offset of one partition (durably, where the
    /// generation lets a client choose).
    pub async fn store_offset(
        &self,
        group: &str,
        stream: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<Stored, ServiceError> {
        match self {
            Session::V0_8(session) => session.store_offset(group, stream, topic, partition, offset).await,
            Session::V0_9(session) => session.store_offset(group, stream, topic, partition, offset).await,
        }
    }

    /// The group's stored offset of one partition, if any (reading it needs
    /// no membership).
    pub async fn stored_offset(
        &self,
        group: &str,
        stream: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, ServiceError> {
        match self {
            Session::V0_8(session) => session.stored_offset(group, stream, topic, partition).await,
            Session::V0_9(session) => session.stored_offset(group, stream, topic, partition).await,
        }
    }

    /// The last message of each non-empty partition.
    pub async fn last_messages(&self, stream: &str, topic: &str) -> Result<Vec<(u32, Message)>, ServiceError> {
        let Some(details) = self.topic(stream, topic).await? else { return Ok(Vec::new()) };
        let mut last = Vec::new();
        for partition in details.partitions.iter().filter(|partition| partition.messages > 0) {
            let polled = self.poll(stream, topic, partition.id, Reader::Named(POSITION_READER), Start::Last, 1).await?;
            match polled {
                Polled::Messages(messages) => {
                    if let Some(message) = messages.into_iter().last() {
                        last.push((partition.id, message));
                    }
                }
                Polled::NotOwned => {}
                Polled::Unreadable(cause) => {
                    return Err(ServiceError::fatal(
                        format!("reading the last message of {stream}/{topic} partition {}", partition.id),
                        cause,
                    ));
                }
            }
        }
        Ok(last)
    }

    /// Closes the session (and with it any group membership).
    pub async fn shutdown(self) {
        match self {
            Session::V0_8(session) => session.shutdown().await,
            Session::V0_9(session) => session.shutdown().await,
        }
    }
}

/// The reader name Ferry reads partitions' last messages as: a plain
/// consumer, never a group member, so no group is disturbed.
const POSITION_READER: &str = "ferry-position-reader";
