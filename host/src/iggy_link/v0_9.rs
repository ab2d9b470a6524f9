//! Generation 0.9 (iggy-server 0.9), spoken with the `iggy` 0.11 SDK.
//!
//! What differs from 0.8, and how Ferry keeps its guarantees:
//! - A group member learns its partitions by a sync (code 606), which the
//!   SDK does only inside its own round-robin poll and keeps to itself.
//!   Ferry polls each partition from a cursor of its own (see
//!   `source::iggy`), so it sends the sync itself and polls only the
//!   partitions it was given.
//! - A stale assignment is fenced: a poll of a partition the member no
//!   longer owns answers empty with partition id `u32::MAX`, and an offset
//!   stored for one fails with error 5009. Both are [`Polled::NotOwned`] /
//!   [`Stored::NotOwned`]: a rebalance, after which the source syncs again.
//! - Offsets are stored with the SDK's fixed `Quorum` acknowledgement, the
//!   durable one.
//! - The SDK always sends the `durability` topic options, which servers
//!   built before 0.9.0 (the 0.9.0-edge releases) refuse as unknown keys
//!   (error 4041); topic creation then falls back to a request without
//!   options, which every 0.9 server takes.

use bytes::Bytes;
use iggy_0_11::prelude::{
    Client, CompressionAlgorithm, Consumer, ConsumerGroupClient, ConsumerOffsetClient, Identifier, IggyClient,
    IggyError, IggyExpiry, IggyMessage, MaxTopicSize, MessageClient, NonZeroIggyDuration, Partitioning,
    PollingStrategy, RESYNC_REQUIRED_PARTITION_SENTINEL, StreamClient, TopicClient, TopicCreateOptions, UserClient,
};
use iggy_binary_protocol_0_11::codes::{CREATE_TOPIC_CODE, SYNC_CONSUMER_GROUP_CODE};
use iggy_binary_protocol_0_11::requests::consumer_groups::SyncConsumerGroupRequest;
use iggy_binary_protocol_0_11::requests::topics::CreateTopicRequest;
use iggy_binary_protocol_0_11::responses::consumer_groups::SyncConsumerGroupResponse;
use iggy_binary_protocol_0_11::{WireDecode, WireEncode, WireIdentifier, WireName, WireOptions};

use super::login::{SDK_RECONNECT_INTERVAL, SDK_RECONNECT_RETRIES, describe, login_within};
use super::message::Message;
use super::types::{Partition, Polled, Reader, Start, Stored, Topic};
use crate::config::IggyConnection;
use crate::error::ServiceError;

pub struct Session {
    client: IggyClient,
}

/// Connects over TCP (or TLS) and logs in.
pub async fn connect(connection: &IggyConnection) -> Result<Session, ServiceError> {
    let what = || describe(connection);
    let interval = NonZeroIggyDuration::new(SDK_RECONNECT_INTERVAL).expect("the reconnect interval is not zero");
    let mut builder = IggyClient::builder()
        .with_tcp()
        .with_server_address(connection.address.clone())
        .with_reconnection_max_retries(Some(SDK_RECONNECT_RETRIES))
        .with_reconnection_interval(interval)
        .with_no_delay();
    if let Some(tls) = &connection.tls {
        builder = builder.with_tls_enabled(true);
        if let Some(domain) = &tls.domain {
            builder = builder.with_tls_domain(domain.clone());
        }
        if let Some(ca_file) = &tls.ca_file {
            builder = builder.with_tls_ca_file(ca_file.clone());
        }
    }
    let client = builder.build().map_err(|error| failed(what(), error))?;
    client.connect().await.map_err(|error| failed(what(), error))?;
    login_within(connection, async {
        client.login_user(&connection.username, &connection.password).await.map(drop).map_err(|error| {
            failed(format!("logging in to Iggy at {} as {}", connection.address, connection.username), error)
        })
    })
    .await?;
    Ok(Session { client })
}

impl Session {
    pub async fn ensure_topic(&self, stream: &str, topic: &str, partitions: u32) -> Result<(), ServiceError> {
        let stream_id = named(stream)?;
        let what = |action: &str| format!("{action} Iggy stream {stream:?}");
        let existing = self.client.get_stream(&stream_id).await.map_err(|error| failed(what("reading"), error))?;
        if existing.is_none() {
            match self.client.create_stream(stream).await {
                Ok(_) | Err(IggyError::StreamNameAlreadyExists(_)) => {}
                Err(error) => return Err(failed(what("creating"), error)),
            }
        }
        let topic_id = named(topic)?;
        let what = |action: &str| format!("{action} Iggy topic {stream}/{topic}");
        let existing =
            self.client.get_topic(&stream_id, &topic_id).await.map_err(|error| failed(what("reading"), error))?;
        if existing.is_some() {
            return Ok(());
        }
        let options = TopicCreateOptions {
            partitions_count: Some(partitions),
            compression_algorithm: Some(CompressionAlgorithm::None),
            message_expiry: Some(IggyExpiry::NeverExpire),
            max_topic_size: Some(MaxTopicSize::ServerDefault),
            ..TopicCreateOptions::default()
        };
        let created = match self.client.create_topic(&stream_id, topic, &options).await {
            Err(IggyError::UnsupportedOptionKey(key)) => {
                tracing::debug!(%key, "the server refuses a topic option of the 0.9.0 client; creating without options");
                self.create_topic_without_options(stream, topic, partitions).await
            }
            created => created.map(drop),
        };
        match created {
            Ok(()) | Err(IggyError::TopicNameAlreadyExists(..)) => Ok(()),
            Err(error) => Err(failed(what("creating"), error)),
        }
    }

    /// Creates a topic with the server's defaults for every option (see the
    /// module doc for which servers need this).
    async fn create_topic_without_options(&self, stream: &str, topic: &str, partitions: u32) -> Result<(), IggyError> {
        let request = CreateTopicRequest {
            stream_id: WireIdentifier::named(stream).map_err(|_| IggyError::InvalidIdentifier)?,
            partitions_count: partitions,
            name: WireName::new(topic).map_err(|_| IggyError::InvalidFormat)?,
            options: WireOptions::from_bytes(Bytes::new()).map_err(|_| IggyError::InvalidFormat)?,
        };
        self.client.send_binary_request(CREATE_TOPIC_CODE, request.to_bytes()).await.map(drop)
    }

    pub async fn topic(&self, stream: &str, topic: &str) -> Result<Option<Topic>, ServiceError> {
        let details = self
            .client
            .get_topic(&named(stream)?, &named(topic)?)
            .await
            .map_err(|error| failed(format!("reading Iggy topic {stream}/{topic}"), error))?;
        Ok(details.map(|details| {
            let mut partitions: Vec<Partition> = details
                .partitions
                .iter()
                .map(|partition| Partition {
                    id: partition.id,
                    messages: partition.messages_count,
                    current_offset: partition.current_offset,
                })
                .collect();
            partitions.sort_by_key(|partition| partition.id);
            Topic { partitions }
        }))
    }

    pub async fn ensure_group(&self, stream: &str, topic: &str, group: &str) -> Result<bool, ServiceError> {
        let what = || format!("setting up consumer group {group:?} on {stream}/{topic}");
        let (stream_id, topic_id, group_id) = (named(stream)?, named(topic)?, named(group)?);
        let existing = self
            .client
            .get_consumer_group(&stream_id, &topic_id, &group_id)
            .await
            .map_err(|error| failed(what(), error))?;
        if existing.is_some() {
            return Ok(false);
        }
        match self.client.create_consumer_group(&stream_id, &topic_id, group).await {
            Ok(_) => Ok(true),
            Err(IggyError::ConsumerGroupNameAlreadyExists(..)) => Ok(false),
            Err(error) => Err(failed(what(), error)),
        }
    }

    pub async fn join_group(&self, stream: &str, topic: &str, group: &str) -> Result<(), ServiceError> {
        self.client
            .join_consumer_group(&named(stream)?, &named(topic)?, &named(group)?)
            .await
            .map_err(|error| failed(format!("joining consumer group {group:?} on {stream}/{topic}"), error))
    }

    pub async fn leave_group(&self, stream: &str, topic: &str, group: &str) -> Result<(), ServiceError> {
        self.client
            .leave_consumer_group(&named(stream)?, &named(topic)?, &named(group)?)
            .await
            .map_err(|error| failed(format!("leaving consumer group {group:?} on {stream}/{topic}"), error))
    }

    /// The partitions the group gives this member now, by a sync of its own.
    pub async fn assigned_partitions(&self, stream: &str, topic: &str, group: &str) -> Result<Vec<u32>, ServiceError> {
        let what = || format!("asking consumer group {group:?} on {stream}/{topic} for this member's partitions");
        let wire = |name: &str| WireIdentifier::named(name).map_err(|_| failed(what(), IggyError::InvalidIdentifier));
        let request =
            SyncConsumerGroupRequest { stream_id: wire(stream)?, topic_id: wire(topic)?, group_id: wire(group)? };
        let reply = self
            .client
            .send_binary_request(SYNC_CONSUMER_GROUP_CODE, request.to_bytes())
            .await
            .map_err(|error| failed(what(), error))?;
        if reply.is_empty() {
            // Not a member (any more): the session lost its membership.
            return Err(ServiceError::iggy(what(), true, "the server no longer counts this client as a member"));
        }
        let (assignment, _) = SyncConsumerGroupResponse::decode(&reply)
            .map_err(|error| ServiceError::iggy(what(), false, format!("cannot read the server's answer: {error}")))?;
        let mut partitions = assignment.partitions;
        partitions.sort_unstable();
        Ok(partitions)
    }

    pub async fn poll(
        &self,
        stream: &str,
        topic: &str,
        partition: u32,
        reader: Reader<'_>,
        start: Start,
        count: u32,
    ) -> Result<Polled, ServiceError> {
        let strategy = match start {
            Start::At(offset) => PollingStrategy::offset(offset),
            Start::AfterStored => PollingStrategy::next(),
            Start::Last => PollingStrategy::last(),
        };
        let polled = self
            .client
            .poll_messages(
                &named(stream)?,
                &named(topic)?,
                Some(partition),
                &consumer(reader)?,
                &strategy,
                count,
                false,
            )
            .await;
        match polled {
            Ok(polled) if polled.partition_id == RESYNC_REQUIRED_PARTITION_SENTINEL => Ok(Polled::NotOwned),
            Ok(polled) => Ok(Polled::Messages(polled.messages.into_iter().map(from_sdk).collect())),
            Err(IggyError::ConsumerGroupPartitionNotOwned(..)) => Ok(Polled::NotOwned),
            Err(error @ IggyError::InvalidOffset(_)) => Ok(Polled::Unreadable(Box::new(error))),
            Err(error) => Err(failed(format!("polling {stream}/{topic} partition {partition}"), error)),
        }
    }

    pub async fn send(
        &self,
        stream: &str,
        topic: &str,
        partition: Option<u32>,
        messages: Vec<Message>,
    ) -> Result<(), ServiceError> {
        let partitioning = match partition {
            Some(partition) => Partitioning::partition_id(partition),
            None => Partitioning::balanced(),
        };
        let mut messages = messages
            .into_iter()
            .map(to_sdk)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| failed(format!("building the messages for {stream}/{topic}"), error))?;
        self.client
            .send_messages(&named(stream)?, &named(topic)?, &partitioning, &mut messages)
            .await
            .map(drop)
            .map_err(|error| {
                let place = partition.map_or(String::new(), |partition| format!(" partition {partition}"));
                failed(format!("producing to {stream}/{topic}{place}"), error)
            })
    }

    pub async fn store_offset(
        &self,
        group: &str,
        stream: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<Stored, ServiceError> {
        let stored = self
            .client
            .store_consumer_offset(&group_consumer(group)?, &named(stream)?, &named(topic)?, Some(partition), offset)
            .await;
        match stored {
            Ok(()) => Ok(Stored::Stored),
            Err(IggyError::ConsumerGroupPartitionNotOwned(..) | IggyError::NotResolvedConsumer(_)) => {
                Ok(Stored::NotOwned)
            }
            Err(error) => Err(failed(
                format!("committing {stream}/{topic} partition {partition} offset {offset} for group {group:?}"),
                error,
            )),
        }
    }

    pub async fn stored_offset(
        &self,
        group: &str,
        stream: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, ServiceError> {
        let stored = self
            .client
            .get_consumer_offset(&group_consumer(group)?, &named(stream)?, &named(topic)?, Some(partition))
            .await
            .map_err(|error| {
                failed(format!("reading group {group:?}'s offset of {stream}/{topic} partition {partition}"), error)
            })?;
        Ok(stored.map(|info| info.stored_offset))
    }

    pub async fn shutdown(self) {
        let _ = self.client.shutdown().await;
    }
}

fn consumer(reader: Reader<'_>) -> Result<Consumer, ServiceError> {
    match reader {
        Reader::Group(group) => group_consumer(group),
        Reader::Named(name) => Ok(Consumer::new(named(name)?)),
    }
}

fn group_consumer(group: &str) -> Result<Consumer, ServiceError> {
    Ok(Consumer::group(named(group)?))
}

/// An Iggy identifier from a stream, topic or group name.
fn named(name: &str) -> Result<Identifier, ServiceError> {
    Identifier::named(name).map_err(|error| failed(format!("{name:?} is not a valid Iggy name"), error))
}

fn from_sdk(message: IggyMessage) -> Message {
    Message {
        id: message.header.id,
        offset: message.header.offset,
        timestamp: message.header.timestamp,
        payload: message.payload,
        user_headers: message.user_headers,
    }
}

fn to_sdk(message: Message) -> Result<IggyMessage, IggyError> {
    let id = (message.id != 0).then_some(message.id);
    let mut sdk = IggyMessage::builder().maybe_id(id).payload(message.payload).build()?;
    if let Some(headers) = message.user_headers {
        sdk.header.user_headers_length = headers.len() as u32;
        sdk.user_headers = Some(headers);
    }
    Ok(sdk)
}

/// A failed call, transient or not by what the SDK reported.
fn failed(what: impl Into<String>, error: IggyError) -> ServiceError {
    ServiceError::iggy(what, is_transient(&error), error)
}

/// Connection trouble, server restarts and a lost session are transient;
/// anything about the request itself (names, permissions, sizes) is not.
fn is_transient(error: &IggyError) -> bool {
    matches!(
        error,
        IggyError::Disconnected
            | IggyError::CannotEstablishConnection
            | IggyError::NotConnected
            | IggyError::ConnectionClosed
            | IggyError::StaleClient
            | IggyError::TcpError
            | IggyError::IoError(_)
            | IggyError::Unauthenticated
            | IggyError::ClientShutdown
            | IggyError::EmptyResponse
            | IggyError::ConsumerGroupMemberNotFound(..)
            | IggyError::CannotSendMessagesDueToClientDisconnection
            | IggyError::ShardCommunicationError
            | IggyError::TaskTimeout
            | IggyError::TopicFull(..)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_connection_trouble_then_errors_are_transient_and_given_a_bad_request_then_not() {
        assert!(is_transient(&IggyError::Disconnected));
        assert!(is_transient(&IggyError::Unauthenticated));
        assert!(is_transient(&IggyError::StaleClient));
        assert!(!is_transient(&IggyError::InvalidCredentials));
        assert!(!is_transient(&IggyError::TooBigMessagePayload));
    }
}
