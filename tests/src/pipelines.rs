//! Running real pipelines in-process against the test servers, and
//! producing and reading what they move.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use ferry::config::PipelineConfig;
use ferry::pipeline::{Counts, PipelineError};
use ferry::telemetry::PipelineTelemetry;
use ferry::wasm::{CompileCache, WasmRuntime};
use iggy::prelude::{
    Consumer, ConsumerGroupClient, ConsumerGroupDetails, Identifier, IggyClient, IggyError, IggyMessage, MessageClient,
    Partitioning, PollingStrategy, TopicClient,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Names unique within the test process, so tests sharing a server (through
/// `IGGY_ADDRESS` or `MONGODB_URI`) never see each other's data.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Parses pipeline TOML as `ferry run` would (with no variables set).
pub fn parse(toml: &str) -> PipelineConfig {
    PipelineConfig::parse(toml, Path::new("test-pipeline.toml"), &|_| None)
        .unwrap_or_else(|error| panic!("the test pipeline is valid: {error}"))
}

/// A pipeline running on the current runtime until its token is cancelled.
pub struct RunningPipeline {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<Counts, PipelineError>>,
    /// Its metrics and status.
    pub telemetry: PipelineTelemetry,
}

impl RunningPipeline {
    /// Starts the pipeline with the tests' shared compile cache.
    pub fn start(config: PipelineConfig) -> Self {
        Self::start_with(config, crate::compile_cache::runtime())
    }

    /// Starts the pipeline with compiled transforms from (or into) `cache`,
    /// as `ferry run` does.
    pub fn start_cached(config: PipelineConfig, cache: &Path) -> Self {
        Self::start_with(config, WasmRuntime::new(Some(CompileCache::new(cache))).expect("the engine starts"))
    }

    fn start_with(config: PipelineConfig, runtime: WasmRuntime) -> Self {
        let shutdown = CancellationToken::new();
        let telemetry = PipelineTelemetry::detached(&config.name);
        let task = tokio::spawn(ferry::pipeline::run(config, Arc::new(runtime), telemetry.clone(), shutdown.clone()));
        Self { shutdown, task, telemetry }
    }

    /// Asks for a graceful stop and waits for the outcome.
    pub async fn stop(self) -> Result<Counts, PipelineError> {
        self.shutdown.cancel();
        self.task.await.expect("the pipeline task does not panic")
    }

    /// Kills the pipeline mid-flight, as a crash would: no commit, no goodbye.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Sends payloads to a topic in chunks, spread over partitions.
pub async fn produce(client: &IggyClient, stream: &str, topic: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
    let (stream, topic) = (Identifier::named(stream).unwrap(), Identifier::named(topic).unwrap());
    let payloads: Vec<Vec<u8>> = payloads.into_iter().collect();
    for chunk in payloads.chunks(1000) {
        let mut messages: Vec<IggyMessage> = chunk
            .iter()
            .map(|payload| {
                IggyMessage::builder().payload(Bytes::from(payload.clone())).build().expect("a valid message")
            })
            .collect();
        client
            .send_messages(&stream, &topic, &Partitioning::balanced(), &mut messages)
            .await
            .expect("messages are sent");
    }
}

/// The ids of a topic's partitions (none if the topic does not exist yet).
pub async fn partitions(client: &IggyClient, stream: &str, topic: &str) -> Vec<u32> {
    let (stream, topic) = (Identifier::named(stream).unwrap(), Identifier::named(topic).unwrap());
    let topic = client.get_topic(&stream, &topic).await.expect("the topic can be read");
    topic.map(|topic| topic.partitions.iter().map(|partition| partition.id).collect()).unwrap_or_default()
}

/// Every message of a topic, partition by partition, from the start.
pub async fn read_topic(client: &IggyClient, stream: &str, topic: &str) -> Vec<IggyMessage> {
    let mut messages = Vec::new();
    for partition in partitions(client, stream, topic).await {
        messages.extend(read_all(client, stream, topic, partition).await);
    }
    messages
}

/// Every message of a topic partition, from the start.
pub async fn read_all(client: &IggyClient, stream: &str, topic: &str, partition: u32) -> Vec<IggyMessage> {
    let (messages, error) = read_until_error(client, stream, topic, partition).await;
    if let Some(error) = error {
        panic!("the topic can be read: {error}");
    }
    messages
}

/// The messages of a topic partition from the start up to its end, or up
/// to the first poll the server refuses (and its error).
pub async fn read_until_error(
    client: &IggyClient,
    stream: &str,
    topic: &str,
    partition: u32,
) -> (Vec<IggyMessage>, Option<IggyError>) {
    let (stream, topic) = (Identifier::named(stream).unwrap(), Identifier::named(topic).unwrap());
    let consumer = Consumer::new(Identifier::named("test-reader").unwrap());
    let mut messages: Vec<IggyMessage> = Vec::new();
    loop {
        let next = messages.last().map_or(0, |message| message.header.offset + 1);
        let strategy = PollingStrategy::offset(next);
        match client.poll_messages(&stream, &topic, Some(partition), &consumer, &strategy, 1000, false).await {
            Ok(polled) if polled.messages.is_empty() => return (messages, None),
            Ok(polled) => messages.extend(polled.messages),
            Err(error) => return (messages, Some(error)),
        }
    }
}

/// A consumer group's members and their partitions, if the group exists.
pub async fn group(client: &IggyClient, stream: &str, topic: &str, group: &str) -> Option<ConsumerGroupDetails> {
    let ids =
        (Identifier::named(stream).unwrap(), Identifier::named(topic).unwrap(), Identifier::named(group).unwrap());
    client.get_consumer_group(&ids.0, &ids.1, &ids.2).await.expect("consumer groups can be read")
}

/// A user header of a message as text.
pub fn header(message: &IggyMessage, name: &str) -> Option<String> {
    let headers = message.user_headers_map().ok()??;
    headers.get(&iggy::prelude::HeaderKey::try_from(name).ok()?).map(|value| value.to_string_value())
}

/// The source offset a dead letter's `ferry-source` header names
/// (`<stream>/<topic> partition <id> offset <offset>`).
pub fn dead_letter_offset(letter: &IggyMessage) -> u64 {
    source_offset(&header(letter, "ferry-source").expect("a dead letter names its source"))
}

/// The offset in a `ferry-source` header's text.
pub fn source_offset(source: &str) -> u64 {
    let offset = source.rsplit_once(" offset ").and_then(|(_, offset)| offset.parse().ok());
    offset.unwrap_or_else(|| panic!("no offset in ferry-source {source:?}"))
}

/// A sensor reading like those of the seed use case.
pub fn reading(i: usize) -> Vec<u8> {
    format!(
        r#"{{"sensor_id":"s{}","temp":{}.5,"ts":"2026-11-26T03:{:02}:{:02}Z","seq":{i}}}"#,
        i % 20,
        i % 35,
        i / 60 % 60,
        i % 60
    )
    .into_bytes()
}
