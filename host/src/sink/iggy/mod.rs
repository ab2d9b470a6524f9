//! The Iggy sink: outputs become messages, spread over partitions so that
//! every change of one document lands in one partition, in order.
//!
//! Writes are made safe to repeat by reading before writing: each message
//! carries its change's position, and before the first write (and after any
//! failed one) the sink reads the last message of every partition. Outputs
//! a partition already holds are not sent again, so a crash or a lost
//! acknowledgement never duplicates a message.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use iggy::prelude::{HeaderKey, HeaderValue, IggyMessage, MAX_PAYLOAD_SIZE, MessageClient, Partitioning, TopicClient};
use sha2::{Digest, Sha256};

use super::{Prepare, Rejection, Sink};
use crate::config::{IggySinkConfig, PartitionBy};
use crate::iggy_link::{IggyLink, add_header, ensure_topic, named};
use crate::record::{Batch, Operation, Origin, Record, position_id};
use crate::service_error::ServiceError;
use crate::source::KEY_HEADER;
use crate::source::mongodb::{ChangePosition, Relation, partition_positions};
use crate::wasm::{Emitted, RecordResult};

pub struct IggySink {
    config: IggySinkConfig,
    link: IggyLink,
    /// The topic's partitions, read when connecting.
    partitions: Vec<u32>,
    /// Per partition, the position of its last message while this run has
    /// not yet gone past it: outputs at or before it are already there.
    holds: HashMap<u32, ChangePosition>,
    /// Whether `partitions` and `holds` must be read (again) before writing.
    stale: bool,
}

impl IggySink {
    pub fn new(config: IggySinkConfig) -> Self {
        Self {
            link: IggyLink::new(config.connection()),
            config,
            partitions: Vec::new(),
            holds: HashMap::new(),
            stale: true,
        }
    }

    fn topic_name(&self) -> String {
        format!("{}/{}", self.config.stream, self.config.topic)
    }

    /// Connects, creates the topic if asked, and reads what each partition
    /// already holds.
    async fn refresh(&mut self) -> Result<(), ServiceError> {
        let topic_name = self.topic_name();
        let (client, _) = self.link.client().await?;
        if let Some(create) = self.config.create {
            ensure_topic(client, &self.config.stream, &self.config.topic, create.partitions).await?;
        }
        let topic = client
            .get_topic(&named(&self.config.stream)?, &named(&self.config.topic)?)
            .await
            .map_err(|error| ServiceError::iggy(format!("reading Iggy topic {topic_name}"), error))?
            .ok_or_else(|| {
                ServiceError::fatal(
                    format!("reading Iggy topic {topic_name}"),
                    format!("the topic {topic_name} does not exist; create it, or set `create = {{ partitions = N }}`"),
                )
            })?;
        self.partitions = topic.partitions.iter().map(|partition| partition.id).collect();
        self.holds = partition_positions(client, &self.config.stream, &self.config.topic)
            .await?
            .into_iter()
            .filter_map(|(partition, position)| Some((partition, position?)))
            .collect();
        self.stale = false;
        Ok(())
    }

    async fn send(&mut self, plan: &IggyPlan) -> Result<(), ServiceError> {
        if self.stale {
            self.refresh().await?;
        }
        let mut by_partition: Vec<(u32, Vec<IggyMessage>)> = Vec::new();
        for outgoing in &plan.messages {
            let partition = self.partitions[(route_hash(&outgoing.route) % self.partitions.len() as u64) as usize];
            if let (Some(held), Some(position)) = (self.holds.get(&partition), &outgoing.position) {
                match position.relation_to(held) {
                    Relation::Behind | Relation::Same => continue,
                    Relation::Ahead => {
                        self.holds.remove(&partition);
                    }
                }
            }
            let message = outgoing.message().map_err(|error| ServiceError::iggy("building a message", error))?;
            match by_partition.iter_mut().find(|(id, _)| *id == partition) {
                Some((_, messages)) => messages.push(message),
                None => by_partition.push((partition, vec![message])),
            }
        }
        let (stream, topic) = (named(&self.config.stream)?, named(&self.config.topic)?);
        let topic_name = self.topic_name();
        let (client, _) = self.link.client().await?;
        for (partition, mut messages) in by_partition {
            client
                .send_messages(&stream, &topic, &Partitioning::partition_id(partition), &mut messages)
                .await
                .map_err(|error| {
                    ServiceError::iggy(format!("producing to {topic_name} partition {partition}"), error)
                })?;
        }
        Ok(())
    }
}

/// Builds a batch's messages on the transform thread.
pub struct IggyPlanner {
    partition_by: PartitionBy,
}

/// One message to send, in a form that can be rebuilt for a retry (Iggy's
/// messages are consumed by sending).
pub struct Outgoing {
    /// What decides the partition.
    route: Vec<u8>,
    id: u128,
    payload: Bytes,
    headers: BTreeMap<HeaderKey, HeaderValue>,
    position: Option<ChangePosition>,
}

pub struct IggyPlan {
    messages: Vec<Outgoing>,
    rejections: Vec<Rejection>,
}

impl Outgoing {
    fn message(&self) -> Result<IggyMessage, iggy::prelude::IggyError> {
        IggyMessage::builder().id(self.id).payload(self.payload.clone()).user_headers(self.headers.clone()).build()
    }
}

impl Prepare for IggyPlanner {
    type Prepared = IggyPlan;

    fn prepare(&self, batch: &Batch, results: &[RecordResult]) -> IggyPlan {
        let mut plan = IggyPlan { messages: Vec::with_capacity(results.len()), rejections: Vec::new() };
        for (input, (record, result)) in batch.records.iter().zip(results).enumerate() {
            let RecordResult::Emitted(outputs) = result else { continue };
            let outgoing: Result<Vec<Outgoing>, String> = outputs
                .iter()
                .enumerate()
                .map(|(n, output)| outgoing(batch, record, n, output, self.partition_by))
                .collect();
            match outgoing {
                Ok(outgoing) => plan.messages.extend(outgoing),
                Err(reason) => plan.rejections.push(Rejection { input, reason }),
            }
        }
        plan
    }
}

impl Sink for IggySink {
    type Prepare = IggyPlanner;

    fn preparer(&self) -> IggyPlanner {
        IggyPlanner { partition_by: self.config.partition_by }
    }

    async fn write(&mut self, _: &Batch, _: &[RecordResult], plan: &IggyPlan) -> Result<Vec<Rejection>, ServiceError> {
        match self.send(plan).await {
            Ok(()) => Ok(plan.rejections.clone()),
            Err(error) => {
                // Some partitions may have taken their messages: read them
                // again before the retry, so nothing is sent twice.
                self.stale = true;
                if error.transient {
                    self.link.reset().await;
                }
                Err(error)
            }
        }
    }
}

/// The message for `output` (the `n`-th of `record`'s outputs).
fn outgoing(
    batch: &Batch,
    record: &Record,
    n: usize,
    output: &Emitted,
    partition_by: PartitionBy,
) -> Result<Outgoing, String> {
    if output.payload.is_empty() {
        return Err("an empty payload cannot be sent to Iggy".to_owned());
    }
    if output.payload.len() > MAX_PAYLOAD_SIZE as usize {
        return Err(format!("a payload of {} bytes is above Iggy's limit of {MAX_PAYLOAD_SIZE}", output.payload.len()));
    }
    let text_headers = output.headers.iter().map(|header| (header.name.as_str(), header.value.as_str()));
    let position = ChangePosition::from_text_headers(text_headers);
    let document_key = match &record.origin {
        Origin::Mongodb(change) => change.document_key.clone(),
        _ => None,
    };
    let route = match partition_by {
        PartitionBy::DocumentKey => document_key.clone().map(String::into_bytes).or_else(|| output.key.clone()),
        PartitionBy::Key => output.key.clone(),
        PartitionBy::Balanced => None,
    };
    let identity = match &position {
        Some(position) => position.to_json(),
        None => position_id(&batch.source, &record.origin),
    };
    let route = match (route, partition_by) {
        (Some(route), _) => route,
        (None, PartitionBy::Key) => {
            return Err("partition_by = \"key\", but the transform gave this output no key".into());
        }
        (None, _) => identity.clone().into_bytes(),
    };
    let mut headers = BTreeMap::new();
    for header in &output.headers {
        add_header(&mut headers, &header.name, &header.value);
    }
    if let Origin::Mongodb(change) = &record.origin {
        add_header(&mut headers, "ferry-operation", operation_name(&change.operation));
        let namespace = match &change.namespace.collection {
            Some(collection) => format!("{}.{collection}", change.namespace.database),
            None => change.namespace.database.clone(),
        };
        add_header(&mut headers, "ferry-namespace", &namespace);
        if let Some(key) = &document_key {
            add_header(&mut headers, "ferry-document-key", key);
        }
    }
    if let Some(key) = &output.key {
        add_header(&mut headers, KEY_HEADER, &String::from_utf8_lossy(key));
    }
    let digest = Sha256::new().chain_update(identity.as_bytes()).chain_update((n as u64).to_le_bytes()).finalize();
    let id = u128::from_be_bytes(digest[..16].try_into().expect("a SHA-256 digest has 32 bytes"));
    Ok(Outgoing { route, id, payload: Bytes::from(output.payload.clone()), headers, position })
}

fn operation_name(operation: &Operation) -> &str {
    match operation {
        Operation::Insert => "insert",
        Operation::Update => "update",
        Operation::Replace => "replace",
        Operation::Delete => "delete",
        Operation::Drop => "drop",
        Operation::Rename => "rename",
        Operation::DropDatabase => "dropDatabase",
        Operation::Invalidate => "invalidate",
        Operation::Other(name) => name,
    }
}

/// A hash that never changes between Ferry versions, so a document keeps
/// its partition across upgrades (and per-document order holds).
fn route_hash(route: &[u8]) -> u64 {
    u64::from_be_bytes(Sha256::digest(route)[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}
