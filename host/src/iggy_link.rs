//! One connection to an Iggy server, made lazily and remade after failures.
//!
//! After a server restart the SDK's socket may come back without a session
//! (or a consumer-group membership), so rather than patch a broken client
//! Ferry drops it and connects, logs in and re-joins afresh.

use std::time::{Duration, Instant};

use iggy::prelude::{
    Client, CompressionAlgorithm, Identifier, IggyClient, IggyDuration, IggyError, IggyExpiry, MaxTopicSize,
    StreamClient, TopicClient, TopicDetails, UserClient,
};

use crate::config::{CreateTopic, IggyConnection};
use crate::service_error::ServiceError;

/// How often the SDK itself retries a dropped socket before reporting it;
/// Ferry's own retry loop (with backoff and logging) takes over after that.
const SDK_RECONNECT_RETRIES: u32 = 2;

/// A lazily connected, logged-in client.
pub struct IggyLink {
    connection: IggyConnection,
    client: Option<IggyClient>,
}

impl IggyLink {
    pub fn new(connection: IggyConnection) -> Self {
        Self { connection, client: None }
    }

    pub fn address(&self) -> &str {
        &self.connection.address
    }

    /// The client, connecting and logging in first if needed. The flag is
    /// true when this call made a new connection.
    pub async fn client(&mut self) -> Result<(&IggyClient, bool), ServiceError> {
        let fresh = self.client.is_none();
        if fresh {
            let client = connect(&self.connection).await?;
            self.client = Some(client);
        }
        Ok((self.client.as_ref().expect("connected above"), fresh))
    }

    /// Forgets the client after a failure; the next call reconnects.
    pub async fn reset(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.shutdown().await;
        }
    }
}

impl Drop for IggyLink {
    /// Closes the connection even when the owner is dropped mid-flight (a
    /// cancelled task): the SDK keeps background tasks that would otherwise
    /// hold the socket, and with it a consumer-group membership, open.
    fn drop(&mut self) {
        if let (Some(client), Ok(runtime)) = (self.client.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = client.shutdown().await;
            });
        }
    }
}

/// Connects over TCP and logs in.
pub async fn connect(connection: &IggyConnection) -> Result<IggyClient, ServiceError> {
    let what = || format!("connecting to Iggy at {}", connection.address);
    let mut builder = IggyClient::builder()
        .with_tcp()
        .with_server_address(connection.address.clone())
        .with_reconnection_max_retries(Some(SDK_RECONNECT_RETRIES))
        .with_reconnection_interval(IggyDuration::from(std::time::Duration::from_millis(500)))
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
    let client = builder.build().map_err(|error| ServiceError::iggy(what(), error))?;
    client.connect().await.map_err(|error| ServiceError::iggy(what(), error))?;
    client
        .login_user(&connection.username, &connection.password)
        .await
        .map_err(|error| ServiceError::iggy(format!("logging in to Iggy as {}", connection.username), error))?;
    Ok(client)
}

/// An Iggy identifier from a stream, topic or group name.
pub fn named(name: &str) -> Result<Identifier, ServiceError> {
    Identifier::named(name).map_err(|error| ServiceError::iggy(format!("{name:?} is not a valid Iggy name"), error))
}

/// Creates `stream` and `topic` (with `partitions`) unless they exist.
pub async fn ensure_topic(client: &IggyClient, stream: &str, topic: &str, partitions: u32) -> Result<(), ServiceError> {
    let stream_id = named(stream)?;
    let what = |action: &str| format!("{action} Iggy stream {stream:?}");
    let existing = client.get_stream(&stream_id).await.map_err(|error| ServiceError::iggy(what("reading"), error))?;
    if existing.is_none() {
        match client.create_stream(stream).await {
            Ok(_) | Err(IggyError::StreamNameAlreadyExists(_)) => {}
            Err(error) => return Err(ServiceError::iggy(what("creating"), error)),
        }
    }
    let topic_id = named(topic)?;
    let what = |action: &str| format!("{action} Iggy topic {stream}/{topic}");
    let existing =
        client.get_topic(&stream_id, &topic_id).await.map_err(|error| ServiceError::iggy(what("reading"), error))?;
    if existing.is_none() {
        let created = client
            .create_topic(
                &stream_id,
                topic,
                partitions,
                CompressionAlgorithm::None,
                None,
                IggyExpiry::NeverExpire,
                MaxTopicSize::ServerDefault,
            )
            .await;
        match created {
            Ok(_) | Err(IggyError::TopicNameAlreadyExists(..)) => {}
            Err(error) => return Err(ServiceError::iggy(what("creating"), error)),
        }
    }
    Ok(())
}

/// How long a topic may show no partitions before Ferry takes that as its
/// real shape. Iggy creates a topic and then its partitions, in two steps:
/// a process that sees the topic in between (another pipeline's `create`
/// raced its own) sees none.
const EMPTY_TOPIC_PATIENCE: Duration = Duration::from_secs(30);

/// Within one call, how often (and how long apart) a topic without
/// partitions is read again before the call reports it: the creation in
/// progress usually finishes within milliseconds.
const EMPTY_TOPIC_REREADS: u32 = 10;
const EMPTY_TOPIC_REREAD_PAUSE: Duration = Duration::from_millis(50);

/// Opens one topic, creating it first when the pipeline asks, and hands
/// out its partitions only once it has some.
pub struct TopicOpener {
    stream: String,
    topic: String,
    create: Option<CreateTopic>,
    /// When this topic was first seen without partitions, in a stretch of
    /// such sightings.
    empty_since: Option<Instant>,
}

/// An open topic: its details, with at least one partition.
pub struct OpenTopic {
    pub details: TopicDetails,
    /// The partition ids, never empty.
    pub partitions: Vec<u32>,
}

impl TopicOpener {
    pub fn new(stream: &str, topic: &str, create: Option<CreateTopic>) -> Self {
        Self { stream: stream.to_owned(), topic: topic.to_owned(), create, empty_since: None }
    }

    /// `stream/topic`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.stream, self.topic)
    }

    /// The topic's details, creating the stream and topic first when
    /// `create` says so; a missing topic otherwise is a permanent error that
    /// says how to fix it (a typo in a pipeline file should not conjure a
    /// topic). A topic without partitions is read again for a moment, then
    /// reported as transient, and as permanent once it has stayed so for
    /// [`EMPTY_TOPIC_PATIENCE`].
    pub async fn open(&mut self, client: &IggyClient) -> Result<OpenTopic, ServiceError> {
        if let Some(create) = self.create {
            ensure_topic(client, &self.stream, &self.topic, create.partitions).await?;
        }
        let (stream, topic) = (named(&self.stream)?, named(&self.topic)?);
        let what = || format!("reading Iggy topic {}", self.name());
        for reread in 0.. {
            let details = client
                .get_topic(&stream, &topic)
                .await
                .map_err(|error| ServiceError::iggy(what(), error))?
                .ok_or_else(|| {
                ServiceError::fatal(
                    what(),
                    format!(
                        "the topic {} does not exist; create it, or set `create = {{ partitions = N }}`",
                        self.name()
                    ),
                )
            })?;
            if !details.partitions.is_empty() || reread == EMPTY_TOPIC_REREADS {
                return self.with_partitions(details, Instant::now());
            }
            tracing::debug!(topic = %self.name(), "the topic has no partitions yet; reading it again");
            tokio::time::sleep(EMPTY_TOPIC_REREAD_PAUSE).await;
        }
        unreachable!("the loop returns by its last reread")
    }

    /// `details` as an open topic, or why it cannot be used yet (`now` is
    /// when it was read).
    fn with_partitions(&mut self, details: TopicDetails, now: Instant) -> Result<OpenTopic, ServiceError> {
        let partitions: Vec<u32> = details.partitions.iter().map(|partition| partition.id).collect();
        if !partitions.is_empty() {
            self.empty_since = None;
            return Ok(OpenTopic { details, partitions });
        }
        let since = *self.empty_since.get_or_insert(now);
        let what = format!("opening Iggy topic {}", self.name());
        if now.duration_since(since) < EMPTY_TOPIC_PATIENCE {
            return Err(ServiceError::not_yet(what, format!("the topic {} has no partitions yet", self.name())));
        }
        Err(ServiceError::fatal(
            what,
            format!(
                "the topic {} has had no partitions for {}s; add partitions to it, or delete it so that \
                 `create = {{ partitions = N }}` makes it whole",
                self.name(),
                EMPTY_TOPIC_PATIENCE.as_secs()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use iggy::prelude::{CompressionAlgorithm, IggyByteSize, IggyExpiry, IggyTimestamp, MaxTopicSize, Partition};

    use super::*;
    use crate::error_chain::error_chain;

    fn details(partitions: &[u32]) -> TopicDetails {
        TopicDetails {
            id: 1,
            created_at: IggyTimestamp::now(),
            name: "changes".into(),
            size: IggyByteSize::default(),
            message_expiry: IggyExpiry::NeverExpire,
            compression_algorithm: CompressionAlgorithm::None,
            max_topic_size: MaxTopicSize::ServerDefault,
            replication_factor: 1,
            messages_count: 0,
            partitions_count: partitions.len() as u32,
            partitions: partitions
                .iter()
                .map(|&id| Partition {
                    id,
                    created_at: IggyTimestamp::now(),
                    segments_count: 1,
                    current_offset: 0,
                    size: IggyByteSize::default(),
                    messages_count: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn given_a_topic_without_partitions_then_it_is_waited_for_and_then_used() {
        let mut opener = TopicOpener::new("iot", "changes", None);
        let start = Instant::now();
        let error = opener.with_partitions(details(&[]), start).err().expect("no partitions, no topic");
        assert!(error.transient, "a creation in progress is waited for");
        assert!(error_chain(&error).contains("the topic iot/changes has no partitions yet"), "{}", error_chain(&error));
        let open = opener.with_partitions(details(&[0, 1, 2]), start + Duration::from_secs(1)).unwrap();
        assert_eq!(open.partitions, [0, 1, 2]);
    }

    #[test]
    fn given_a_topic_that_stays_without_partitions_then_a_permanent_error_names_it() {
        let mut opener = TopicOpener::new("iot", "changes", None);
        let start = Instant::now();
        assert!(opener.with_partitions(details(&[]), start).err().unwrap().transient);
        assert!(opener.with_partitions(details(&[]), start + Duration::from_secs(29)).err().unwrap().transient);
        let error = opener.with_partitions(details(&[]), start + EMPTY_TOPIC_PATIENCE).err().unwrap();
        assert!(!error.transient);
        assert!(
            error_chain(&error).contains("the topic iot/changes has had no partitions for 30s"),
            "{}",
            error_chain(&error)
        );
        // Partitions showing up later start the patience afresh.
        opener.with_partitions(details(&[0]), start + EMPTY_TOPIC_PATIENCE).unwrap();
        let later = start + EMPTY_TOPIC_PATIENCE * 2;
        assert!(opener.with_partitions(details(&[]), later).err().unwrap().transient);
    }
}
