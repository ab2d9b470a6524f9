//! The Iggy sink: outputs become messages, spread over partitions so that
//! every change of one document lands in one partition, in order.
//!
//! Writes are made safe to repeat by reading before writing: each message
//! carries its change's position, and before the first write (and after any
//! failed one) the sink reads the last message of every partition. Outputs
//! a partition already holds are not sent again, so a crash or a lost
//! acknowledgement never duplicates a message.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Overlap, Prepare, Rejection, Sink};
use crate::config::{IggySinkConfig, PartitionBy};
use crate::error::ServiceError;
use crate::iggy_link::{Headers, IggyLink, KEY_HEADER, MAX_PAYLOAD_SIZE, Message, TopicOpener};
use crate::record::{Batch, Operation, Origin, Record, position_id};
use crate::record::{OutputRef, RecordResult};
use crate::resume::{ChangePosition, Relation, joined_pieces, partition_positions};
use crate::standby::Fence;
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::IggyConnected;

/// The header that says which transform versions made a message.
pub const TRANSFORM_HEADER: &str = "ferry-transform";

pub struct IggySink {
    config: IggySinkConfig,
    link: IggyLink,
    topic: TopicOpener,
    /// The topic's partitions, read when connecting; never empty once read.
    partitions: Vec<u32>,
    /// Per partition, the position of its last message while this run has
    /// not yet gone past it: outputs at or before it are already there.
    holds: HashMap<u32, ChangePosition>,
    /// Whether `partitions` and `holds` must be read (again) before writing.
    stale: bool,
    /// Which transform versions make the outputs (see `TransformChain::lineage`).
    lineage: Option<Arc<str>>,
    /// With standbys: the lease this process must hold to send.
    fence: Option<Fence>,
    telemetry: PipelineTelemetry,
}

impl IggySink {
    pub fn new(config: IggySinkConfig, lineage: Option<String>, telemetry: &PipelineTelemetry) -> Self {
        Self {
            telemetry: telemetry.clone(),
            lineage: lineage.map(Arc::from),
            link: IggyLink::new(config.connection()),
            topic: TopicOpener::new(&config.stream, &config.topic, config.create),
            config,
            partitions: Vec::new(),
            holds: HashMap::new(),
            stale: true,
            fence: None,
        }
    }

    /// Sends only while `fence` proves the lease held (see `crate::standby`).
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Reads what each partition holds again before the next write: another
    /// process may have produced since this one last looked.
    pub fn forget_holds(&mut self) {
        self.stale = true;
    }

    /// Connects, creates the topic if asked, and reads what each partition
    /// already holds.
    async fn refresh(&mut self) -> Result<(), ServiceError> {
        let (session, _) = self.link.session().await?;
        IggyConnected { generation: session.generation().as_str() }.emit(&self.telemetry);
        self.partitions = self.topic.open(session).await?.partitions;
        self.holds = partition_positions(session, &self.config.stream, &self.config.topic)
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
        let topic_name = self.topic.name();
        let mut by_partition: Vec<(u32, Vec<Message>)> = Vec::new();
        for outgoing in &plan.messages {
            let Some(partition) = partition_for(outgoing.route, &self.partitions) else {
                return Err(ServiceError::not_yet(
                    format!("producing to {topic_name}"),
                    format!("the topic {topic_name} has no partitions yet"),
                ));
            };
            // Positions are parsed only where a partition still holds one:
            // after the first batch past a restart, nowhere.
            if let Some(held) = self.holds.get(&partition)
                && let Some(position) = outgoing.position()
            {
                match position.relation_to(held) {
                    Relation::Behind | Relation::Same => continue,
                    Relation::Ahead => {
                        self.holds.remove(&partition);
                    }
                }
            }
            let message = outgoing.message.clone();
            match by_partition.iter_mut().find(|(id, _)| *id == partition) {
                Some((_, messages)) => messages.push(message),
                None => by_partition.push((partition, vec![message])),
            }
        }
        let (session, _) = self.link.session().await?;
        for (partition, messages) in by_partition {
            // Checked before every request, as close to it as can be: a
            // process paused anywhere before this line finds out here.
            if let Some(fence) = &self.fence {
                fence.check(|| format!("producing to {topic_name}"))?;
                crate::standby::freeze_point::after_fence_check();
            }
            session.send(&self.config.stream, &self.config.topic, Some(partition), messages).await?;
        }
        Ok(())
    }
}

/// Builds a batch's messages on the transform thread.
pub struct IggyPlanner {
    partition_by: PartitionBy,
    /// The `ferry-transform` header's value, when transforms ran.
    lineage: Option<Arc<str>>,
}

/// One message to send, kept so that it can be sent again on a retry
/// (sending consumes the messages; copying one is cheap, its payload and
/// encoded headers are shared).
pub struct Outgoing {
    /// The hash of what decides the partition (see `route_hash`).
    route: u64,
    message: Message,
}

pub struct IggyPlan {
    messages: Vec<Outgoing>,
    rejections: Vec<Rejection>,
}

/// Sends keep their order within a partition: one batch at a time (the
/// change stream feeding this sink is the slower side; see docs/benchmarks.md).
impl Overlap for IggyPlan {}

impl Outgoing {
    /// The change's position, read back from the headers: needed only
    /// where a partition still holds a position, so not kept on the side.
    fn position(&self) -> Option<ChangePosition> {
        ChangePosition::from_message(&self.message)
    }
}

impl Prepare for IggyPlanner {
    type Prepared = IggyPlan;

    fn prepare(&self, batch: &Batch, results: &[RecordResult]) -> IggyPlan {
        let mut plan = IggyPlan { messages: Vec::with_capacity(results.len()), rejections: Vec::new() };
        for (input, (record, result)) in batch.records.iter().zip(results).enumerate() {
            // Straight into the plan, with no list per record; a record
            // with one bad output sends none of them.
            let first = plan.messages.len();
            for (n, output) in result.outputs(record).enumerate() {
                match outgoing(batch, record, n, output, self.partition_by, self.lineage.as_deref()) {
                    Ok(message) => plan.messages.push(message),
                    Err(reason) => {
                        plan.messages.truncate(first);
                        plan.rejections.push(Rejection { input, reason });
                        break;
                    }
                }
            }
        }
        plan
    }
}

impl Sink for IggySink {
    type Prepare = IggyPlanner;

    fn preparer(&self) -> IggyPlanner {
        IggyPlanner { partition_by: self.config.partition_by, lineage: self.lineage.clone() }
    }

    async fn connect(&mut self) -> Result<(), ServiceError> {
        if self.stale {
            let refreshed = self.refresh().await;
            if refreshed.as_ref().is_err_and(|error| error.transient) {
                self.link.reset().await;
            }
            refreshed?;
        }
        Ok(())
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
    output: OutputRef,
    partition_by: PartitionBy,
    lineage: Option<&str>,
) -> Result<Outgoing, String> {
    if output.payload.is_empty() {
        return Err("an empty payload cannot be sent to Iggy".to_owned());
    }
    if output.payload.len() > MAX_PAYLOAD_SIZE {
        return Err(format!("a payload of {} bytes is above Iggy's limit of {MAX_PAYLOAD_SIZE}", output.payload.len()));
    }
    let document_key = match &record.origin {
        Origin::Mongodb(change) => change.document_key.as_deref(),
        _ => None,
    };
    let route = match partition_by {
        PartitionBy::DocumentKey => document_key.map(str::as_bytes).or(output.key),
        PartitionBy::Key => output.key,
        PartitionBy::Balanced => None,
    };
    // What the message id derives from: the change's position, or the
    // record's position where the output carries none.
    let identity = joined_pieces(output.headers.iter().map(|header| (header.name.as_str(), header.value.as_str())))
        .unwrap_or_else(|| Cow::Owned(position_id(&batch.source, &record.origin)));
    let route = match (route, partition_by) {
        (Some(route), _) => route_hash(route),
        (None, PartitionBy::Key) => {
            return Err("partition_by = \"key\", but the transform gave this output no key".into());
        }
        (None, _) => route_hash(identity.as_bytes()),
    };
    let mut headers = Headers::with_capacity(output.headers.len() + 4);
    for header in output.headers {
        headers.add(&header.name, header.value.as_str());
    }
    if let Origin::Mongodb(change) = &record.origin {
        headers.add("ferry-operation", operation_name(&change.operation));
        let namespace = match &change.namespace.collection {
            Some(collection) => Cow::Owned([change.namespace.database.as_str(), ".", collection].concat()),
            None => Cow::Borrowed(change.namespace.database.as_str()),
        };
        headers.add("ferry-namespace", namespace);
        if let Some(key) = document_key {
            headers.add("ferry-document-key", key);
        }
    }
    if let Some(key) = output.key {
        headers.add(KEY_HEADER, String::from_utf8_lossy(key));
    }
    if let Some(lineage) = lineage {
        headers.add(TRANSFORM_HEADER, lineage);
    }
    let digest = Sha256::new().chain_update(identity.as_bytes()).chain_update((n as u64).to_le_bytes()).finalize();
    let id = u128::from_be_bytes(digest[..16].try_into().expect("a SHA-256 digest has 32 bytes"));
    let message = headers
        .message(id, Bytes::copy_from_slice(output.payload))
        .map_err(|error| format!("cannot build the message: {error}"))?;
    Ok(Outgoing { route, message })
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

/// The partition a message with `route` goes to; none while the topic has
/// no partitions.
fn partition_for(route: u64, partitions: &[u32]) -> Option<u32> {
    let index = route.checked_rem(partitions.len() as u64)?;
    Some(partitions[index as usize])
}

/// A hash that never changes between Ferry versions, so a document keeps
/// its partition across upgrades (and per-document order holds).
fn route_hash(route: &[u8]) -> u64 {
    u64::from_be_bytes(Sha256::digest(route)[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Emitted;
    use crate::record::{BatchSource, ClusterTime, Encoding, Header, MongodbChange, Namespace};

    fn change(token: &str, document_key: &str) -> (Batch, ChangePosition) {
        let position = ChangePosition::Stream { token: bson::doc! { "_data": token }, cluster_time: Some((9, 1)) };
        let headers = position.to_text_pieces().into_iter().map(|(name, value)| Header { name, value }).collect();
        let record = Record {
            payload: b"{}".to_vec(),
            encoding: Encoding::Json,
            key: Some(document_key.as_bytes().to_vec()),
            headers: Some(headers),
            timestamp: 0,
            origin: Origin::Mongodb(MongodbChange {
                namespace: Namespace { database: "shop".into(), collection: Some("orders".into()) },
                operation: Operation::Update,
                document_key: Some(document_key.into()),
                cluster_time: ClusterTime { seconds: 9, increment: 1 },
            }),
        };
        (Batch { source: BatchSource::Mongodb, records: vec![record] }, position)
    }

    fn emitted(batch: &Batch, payload: &[u8], key: Option<&[u8]>) -> Emitted {
        Emitted {
            payload: payload.to_vec(),
            encoding: Encoding::Json,
            key: key.map(<[u8]>::to_vec),
            headers: batch.records[0].headers.clone().unwrap(),
            collection: None,
            write: None,
        }
    }

    fn header(outgoing: &Outgoing, name: &str) -> Option<String> {
        outgoing.message.header(name)
    }

    #[test]
    fn given_a_change_then_the_message_carries_its_position_and_where_it_came_from() {
        let (batch, position) = change("abc", r#"{"_id":7}"#);
        let output = emitted(&batch, br#"{"x":1}"#, Some(br#"{"_id":7}"#));
        let outgoing =
            outgoing(&batch, &batch.records[0], 0, (&output).into(), PartitionBy::DocumentKey, None).unwrap();
        assert_eq!(outgoing.position(), Some(position));
        assert_eq!(outgoing.route, route_hash(br#"{"_id":7}"#));
        assert_eq!(header(&outgoing, "ferry-operation").as_deref(), Some("update"));
        assert_eq!(header(&outgoing, "ferry-namespace").as_deref(), Some("shop.orders"));
        assert_eq!(header(&outgoing, "ferry-document-key").as_deref(), Some(r#"{"_id":7}"#));
        assert_eq!(ChangePosition::from_message(&outgoing.message), outgoing.position());
    }

    #[test]
    fn given_transforms_ran_then_the_message_says_which_versions_made_it() {
        let (batch, _) = change("abc", r#"{"_id":7}"#);
        let output = emitted(&batch, b"x", None);
        let lineage = Some("enrich@52d4eb6e660a,redact@0f1e2d3c4b5a");
        let made = outgoing(&batch, &batch.records[0], 0, (&output).into(), PartitionBy::DocumentKey, lineage).unwrap();
        assert_eq!(header(&made, TRANSFORM_HEADER).as_deref(), lineage);
        let plain = outgoing(&batch, &batch.records[0], 0, (&output).into(), PartitionBy::DocumentKey, None).unwrap();
        assert_eq!(header(&plain, TRANSFORM_HEADER), None);
    }

    #[test]
    fn given_partitioning_choices_then_routes_follow_them() {
        let (batch, _) = change("abc", r#"{"_id":7}"#);
        let by_key = emitted(&batch, b"x", Some(b"tenant-1"));
        let route = |by| outgoing(&batch, &batch.records[0], 0, (&by_key).into(), by, None).unwrap().route;
        assert_eq!(
            route(PartitionBy::DocumentKey),
            route_hash(br#"{"_id":7}"#),
            "the document key, not the transform's"
        );
        assert_eq!(route(PartitionBy::Key), route_hash(b"tenant-1"));
        assert_ne!(route(PartitionBy::Balanced), route(PartitionBy::DocumentKey));
        let keyless = emitted(&batch, b"x", None);
        let error = outgoing(&batch, &batch.records[0], 0, (&keyless).into(), PartitionBy::Key, None).err().unwrap();
        assert!(error.contains("gave this output no key"), "{error}");
    }

    #[test]
    fn given_replayed_outputs_then_ids_repeat_and_differ_per_output() {
        let (batch, _) = change("abc", r#"{"_id":7}"#);
        let output = emitted(&batch, b"x", None);
        let id = |n| {
            outgoing(&batch, &batch.records[0], n, (&output).into(), PartitionBy::DocumentKey, None).unwrap().message.id
        };
        assert_eq!(id(0), id(0));
        assert_ne!(id(0), id(1));
    }

    #[test]
    fn given_an_empty_payload_then_the_input_is_rejected_with_all_its_outputs() {
        let (batch, _) = change("abc", r#"{"_id":7}"#);
        let outputs = vec![emitted(&batch, b"fine", None), emitted(&batch, b"", None)];
        let plan = IggyPlanner { partition_by: PartitionBy::DocumentKey, lineage: None }
            .prepare(&batch, &[RecordResult::Emitted(outputs)]);
        assert!(plan.messages.is_empty(), "no output of a rejected input is sent");
        assert_eq!(plan.rejections, [Rejection { input: 0, reason: "an empty payload cannot be sent to Iggy".into() }]);
    }

    #[test]
    fn given_an_unchanged_record_then_its_message_is_the_record_itself() {
        let (batch, position) = change("abc", r#"{"_id":7}"#);
        let planner = IggyPlanner { partition_by: PartitionBy::DocumentKey, lineage: None };
        let unchanged = planner.prepare(&batch, &[RecordResult::Unchanged]);
        let copied =
            planner.prepare(&batch, &[RecordResult::Emitted(vec![emitted(&batch, b"{}", Some(br#"{"_id":7}"#))])]);
        let (unchanged, copied) = (&unchanged.messages[0], &copied.messages[0]);
        assert_eq!(unchanged.message.payload, &b"{}"[..]);
        assert_eq!(unchanged.position(), Some(position));
        assert_eq!(
            (unchanged.route, unchanged.message.id, &unchanged.message.user_headers),
            (copied.route, copied.message.id, &copied.message.user_headers)
        );
    }

    #[test]
    fn given_no_partitions_then_no_route_and_given_some_then_routes_spread_over_them() {
        assert_eq!(partition_for(route_hash(b"doc-1"), &[]), None);
        assert_eq!(partition_for(7, &[3]), Some(3));
        assert_eq!(partition_for(7, &[0, 1, 2]), Some(1));
    }

    #[test]
    fn given_the_same_route_then_the_partition_never_changes() {
        assert_eq!(route_hash(b"doc-1"), route_hash(b"doc-1"));
        assert_ne!(route_hash(b"doc-1"), route_hash(b"doc-2"));
        // Pinned: a document must keep its partition across Ferry versions.
        assert_eq!(route_hash(b""), 0xe3b0_c442_98fc_1c14);
    }
}
