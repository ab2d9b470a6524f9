//! MongoDB change streams → WebAssembly → Iggy against real servers:
//! every change once, in order per document, through crashes, copies and
//! lost history; and a round trip back into MongoDB.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry::config::{PipelineConfig, Route};
use ferry::error::error_chain;
use ferry::iggy_link::Message;
use ferry_tests::bed::TestBed;
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{RunningPipeline, header, read_topic, unique};
use ferry_tests::servers::{IggyServer, MongoServer};
use ferry_tests::{logs, wait};
use futures::TryStreamExt;
use iggy::prelude::{Identifier, PartitionClient};
use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(90);

/// The bed, with what the change-stream tests do on it.
struct Setup {
    bed: TestBed,
}

ferry_tests::setup_on_bed!(Setup);

/// One change as it arrived in the topic.
#[derive(Debug, Clone)]
struct Change {
    operation: String,
    key: String,
    event: Value,
}

impl Setup {
    async fn new(test: &str) -> Option<Self> {
        Some(Self { bed: TestBed::start(test, "cdc").await? })
    }

    /// The setup around an iggy-server 0.9.
    async fn new_0_9(test: &str) -> Option<Self> {
        Some(Self { bed: TestBed::around(test, IggyServer::start_0_9(test).await?, "cdc").await? })
    }

    /// The change stream of the test's database to the `changes` topic,
    /// dead letters beside it.
    fn pipeline(&self) -> PipelineFile {
        let (mongo, iggy) = (&self.mongo, &self.iggy);
        PipelineFile::changes_to_iggy("readings-changes", mongo, Some(&self.database), iggy, &self.stream, "changes")
            .set("sink.iggy.create.partitions", 3)
            .dead_letter(&self.stream, "changes-dlq")
            .test_pace()
    }

    /// The pipeline watching `collection`, from a second ago.
    fn watching(&self, collection: &str) -> PipelineFile {
        self.pipeline().set("source.mongodb.collection", collection).set("source.mongodb.start", from_now())
    }

    /// The pipeline copying `collection`, then streaming its changes.
    fn copying(&self, collection: &str) -> PipelineFile {
        self.pipeline().set("source.mongodb.collection", collection).set("source.mongodb.start", "copy-existing")
    }

    /// Starts the way out, then (once it has made the topic, which the way
    /// back needs) the way back.
    async fn start_round_trip(
        &self,
        outbound: &PipelineFile,
        inbound: &PipelineFile,
    ) -> (RunningPipeline, RunningPipeline) {
        let out = RunningPipeline::start(outbound.config());
        let session = self.iggy.session().await;
        wait::until("the changes topic", PATIENCE, || async {
            let topic = session.topic(&self.stream, "changes").await.expect("the topic can be read");
            topic.is_some_and(|topic| !topic.partitions.is_empty()).then_some(())
        })
        .await;
        (out, RunningPipeline::start(inbound.config()))
    }

    /// The way back: the changes topic through cdc-replicate into `b`,
    /// with two transform instances and (by default) four writes in flight:
    /// replaces and deletes of one document must keep their order.
    fn replicate_into_b(&self) -> PipelineFile {
        let (iggy, mongo) = (&self.iggy, &self.mongo);
        PipelineFile::iggy_to_mongo("changes-to-b", iggy, &self.stream, "changes", mongo, &self.database, "b")
            .set("source.iggy.consumer_group", "replicate-b")
            .set("delivery.transform_instances", 2)
            .test_pace()
            .transform("replicate", guests::CDC_REPLICATE)
    }

    /// One of the repository's pipeline files, its servers these.
    fn pipeline_file(&self, file: &str) -> PipelineConfig {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let lookup = |name: &str| match name {
            "IGGY_ADDRESS" => Some(self.iggy.address().to_owned()),
            "MONGODB_URI" => Some(self.mongo.uri().to_owned()),
            _ => None,
        };
        PipelineConfig::parse(&text, &path, &lookup).unwrap()
    }

    async fn changes(&self) -> Vec<Change> {
        self.iggy.read_topic(&self.stream, "changes").await.iter().map(change).collect()
    }

    /// Waits until the topic holds a change of `key`'s document with `field`
    /// equal to `value` (a marker written last).
    async fn wait_for_marker(&self, collection: &str) -> Vec<Change> {
        wait::until("the marker's change", PATIENCE, || async {
            let changes = self.changes().await;
            changes
                .iter()
                .any(|change| change.key == r#"{"_id":"marker"}"# && change.event["ns"]["coll"] == collection)
                .then_some(changes)
        })
        .await
    }
}

/// `start` for a stream that begins now, whenever the pipeline opens it.
fn from_now() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(1));
    format!("timestamp:{now}")
}

fn change(message: &Message) -> Change {
    Change {
        operation: message.header("ferry-operation").unwrap_or_default(),
        key: message.header("ferry-document-key").unwrap_or_default(),
        event: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
    }
}

/// A collection's documents by `_id` (as relaxed Extended JSON).
/// Which `_id`s `actual` lacks, has extra, or holds differently from
/// `expected`: what a failure has to say.
fn differences(expected: &BTreeMap<String, Value>, actual: &BTreeMap<String, Value>) -> String {
    let missing: Vec<&String> = expected.keys().filter(|id| !actual.contains_key(*id)).collect();
    let extra: Vec<&String> = actual.keys().filter(|id| !expected.contains_key(*id)).collect();
    let changed: Vec<&String> = expected
        .iter()
        .filter(|(id, value)| actual.get(*id).is_some_and(|other| other != *value))
        .map(|(id, _)| id)
        .collect();
    format!("missing {missing:?}, extra {extra:?}, different {changed:?}")
}

async fn snapshot(collection: &mongodb::Collection<Document>) -> BTreeMap<String, Value> {
    let documents: Vec<Document> = collection.find(doc! {}).await.unwrap().try_collect().await.unwrap();
    documents
        .into_iter()
        .map(|document| {
            let id = document.get("_id").cloned().unwrap().into_relaxed_extjson().to_string();
            (id, Bson::Document(document).into_relaxed_extjson())
        })
        .collect()
}

/// What a collection becomes if its topic's changes are applied in order
/// (per document; the topic keeps each document's changes in one partition).
fn replay(changes: &[Change]) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for change in changes {
        let id = change.event["documentKey"]["_id"].to_string();
        match change.operation.as_str() {
            "insert" | "replace" | "update" => {
                state.insert(id, change.event["fullDocument"].clone());
            }
            "delete" => {
                state.remove(&id);
            }
            _ => {}
        }
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_type_arrives_with_its_headers() {
    let Some(setup) = Setup::new("every_operation_type_arrives_with_its_headers").await else { return };
    let pipeline = RunningPipeline::start(
        setup.watching("readings").set("source.mongodb.full_document", "update-lookup").config(),
    );
    let readings = setup.collection("readings").await;
    readings.insert_one(doc! { "_id": 1, "temp": 20 }).await.unwrap();
    readings.update_one(doc! { "_id": 1 }, doc! { "$set": { "temp": 21 } }).await.unwrap();
    // update-lookup reads the document as it is when the event is read, so
    // let the update arrive before the document changes again.
    wait::until("the update", PATIENCE, || async { (setup.changes().await.len() >= 2).then_some(()) }).await;
    readings.replace_one(doc! { "_id": 1 }, doc! { "temp": 22, "unit": "C" }).await.unwrap();
    readings.delete_one(doc! { "_id": 1 }).await.unwrap();
    let changes = wait::until("four changes", PATIENCE, || async {
        let changes = setup.changes().await;
        (changes.len() >= 4).then_some(changes)
    })
    .await;
    pipeline.stop().await.unwrap();

    let operations: Vec<&str> = changes.iter().map(|change| change.operation.as_str()).collect();
    assert_eq!(operations, ["insert", "update", "replace", "delete"], "in order, in one partition");
    assert!(changes.iter().all(|change| change.key == r#"{"_id":1}"#));
    assert_eq!(changes[1].event["fullDocument"], serde_json::json!({ "_id": 1, "temp": 21 }), "update-lookup");
    assert_eq!(changes[1].event["updateDescription"]["updatedFields"], serde_json::json!({ "temp": 21 }));
    assert_eq!(changes[2].event["fullDocument"], serde_json::json!({ "_id": 1, "temp": 22, "unit": "C" }));
    let client = setup.iggy.client().await;
    let messages = read_topic(&client, &setup.stream, "changes").await;
    assert_eq!(header(&messages[0], "ferry-namespace"), Some(format!("{}.readings", setup.database)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_lookup_updates_carry_only_their_delta() {
    let Some(setup) = Setup::new("without_update_lookup_updates_carry_only_their_delta").await else { return };
    let pipeline = RunningPipeline::start(setup.watching("readings").config());
    let readings = setup.collection("readings").await;
    readings.insert_one(doc! { "_id": 1, "temp": 20 }).await.unwrap();
    readings.update_one(doc! { "_id": 1 }, doc! { "$set": { "temp": 21 } }).await.unwrap();
    let changes = wait::until("two changes", PATIENCE, || async {
        let changes = setup.changes().await;
        (changes.len() >= 2).then_some(changes)
    })
    .await;
    pipeline.stop().await.unwrap();
    assert_eq!(changes[1].operation, "update");
    assert!(changes[1].event.get("fullDocument").is_none_or(Value::is_null), "{}", changes[1].event);
    assert_eq!(changes[1].event["updateDescription"]["updatedFields"], serde_json::json!({ "temp": 21 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_watch_sees_every_collection_and_the_pipeline_filters() {
    let Some(setup) = Setup::new("a_database_watch_sees_every_collection_and_the_pipeline_filters").await else {
        return;
    };
    let inserts = setup.pipeline().set("source.mongodb.start", from_now());
    let inserts = inserts.set("source.mongodb.pipeline", r#"[{"$match": {"operationType": "insert"}}]"#);
    let pipeline = RunningPipeline::start(inserts.config());
    setup.collection("orders").await.insert_one(doc! { "_id": "o1" }).await.unwrap();
    setup.collection("orders").await.update_one(doc! { "_id": "o1" }, doc! { "$set": { "paid": true } }).await.unwrap();
    setup.collection("customers").await.insert_one(doc! { "_id": "c1" }).await.unwrap();
    setup.collection("customers").await.insert_one(doc! { "_id": "marker" }).await.unwrap();
    let changes = setup.wait_for_marker("customers").await;
    pipeline.stop().await.unwrap();
    assert!(changes.iter().all(|change| change.operation == "insert"), "{changes:?}");
    let mut namespaces: Vec<String> = changes.iter().map(|change| change.event["ns"]["coll"].to_string()).collect();
    namespaces.sort();
    namespaces.dedup();
    assert_eq!(namespaces, ["\"customers\"", "\"orders\""]);
    assert_eq!(changes.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_existing_with_writes_going_on_replays_to_exactly_the_final_collection() {
    let Some(setup) = Setup::new("copy_existing_with_writes_going_on_replays_to_exactly_the_final_collection").await
    else {
        return;
    };
    let items = setup.collection("items").await;
    let existing: Vec<Document> = (0..10_000).map(|i| doc! { "_id": i, "v": 0 }).collect();
    items.insert_many(existing).await.unwrap();
    let pipeline =
        RunningPipeline::start(setup.copying("items").set("source.mongodb.full_document", "update-lookup").config());
    // Writes while the copy runs: updates, deletes and new documents.
    for i in 0..300 {
        items.update_one(doc! { "_id": i * 7 }, doc! { "$set": { "v": 1 } }).await.unwrap();
        items.delete_one(doc! { "_id": i * 11 + 1 }).await.unwrap();
        items.insert_one(doc! { "_id": 20_000 + i, "v": 2 }).await.unwrap();
    }
    items.insert_one(doc! { "_id": "marker" }).await.unwrap();
    let changes = setup.wait_for_marker("items").await;
    pipeline.stop().await.unwrap();
    let copied = changes.iter().filter(|change| change.event["copyExisting"] == true).count();
    assert!(copied > 0, "the copy ran");
    assert_eq!(replay(&changes), snapshot(&items).await, "the topic replays to the collection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_and_restarted_every_change_arrives_once_in_order() {
    let test = "killed_mid_stream_and_restarted_every_change_arrives_once_in_order";
    let Some(setup) = Setup::new(test).await else { return };
    every_change_once_in_order_through_a_kill(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_killed_mid_stream_and_restarted_every_change_arrives_once_in_order() {
    let test = "on_iggy_server_0_9_killed_mid_stream_and_restarted_every_change_arrives_once_in_order";
    let Some(setup) = Setup::new_0_9(test).await else { return };
    every_change_once_in_order_through_a_kill(&setup).await;
}

/// Twenty rounds of updates to fifty documents, the pipeline killed
/// mid-stream and started again: every change of every document arrives
/// once, in order.
async fn every_change_once_in_order_through_a_kill(setup: &Setup) {
    let config = setup.watching("counters").set("source.mongodb.full_document", "update-lookup");
    let counters = setup.collection("counters").await;
    let first = RunningPipeline::start(config.config());
    let writer = {
        let counters = counters.clone();
        tokio::spawn(async move {
            for round in 0..20 {
                for id in 0..50 {
                    let update = doc! { "$set": { "v": round } };
                    counters.update_one(doc! { "_id": id }, update).upsert(true).await.unwrap();
                }
            }
            counters.insert_one(doc! { "_id": "marker" }).await.unwrap();
        })
    };
    wait::until("some changes produced", PATIENCE, || async { (setup.changes().await.len() > 100).then_some(()) })
        .await;
    first.abort().await;
    let produced_before_the_crash = setup.changes().await.len();
    assert!(produced_before_the_crash < 1_000, "the crash came mid-stream ({produced_before_the_crash} produced)");
    let second = RunningPipeline::start(config.config());
    writer.await.unwrap();
    let changes = setup.wait_for_marker("counters").await;
    second.stop().await.unwrap();

    let mut versions: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for change in changes.iter().filter(|change| change.key != r#"{"_id":"marker"}"#) {
        // An update's own delta says which version it made (its looked-up
        // fullDocument may already show a later one).
        let version = match change.operation.as_str() {
            "update" => &change.event["updateDescription"]["updatedFields"]["v"],
            _ => &change.event["fullDocument"]["v"],
        };
        versions.entry(change.key.clone()).or_default().push(version.as_i64().unwrap());
    }
    assert_eq!(versions.len(), 50);
    for (key, versions) in versions {
        assert_eq!(versions, (0..20).collect::<Vec<i64>>(), "every change of {key} once, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_copy_and_restarted_the_copy_continues() {
    let Some(setup) = Setup::new("killed_mid_copy_and_restarted_the_copy_continues").await else { return };
    let items = setup.collection("items").await;
    items.insert_many((0..5_000).map(|i| doc! { "_id": i })).await.unwrap();
    let config = setup.copying("items");
    let first = RunningPipeline::start(config.config());
    wait::until("part of the copy", PATIENCE, || async { (setup.changes().await.len() >= 500).then_some(()) }).await;
    first.abort().await;
    let copied_before = setup.changes().await.len();
    assert!(copied_before < 5_000, "killed mid-copy ({copied_before} copied)");

    let second = RunningPipeline::start(config.config());
    items.insert_one(doc! { "_id": "marker" }).await.unwrap();
    let changes = setup.wait_for_marker("items").await;
    second.stop().await.unwrap();
    let mut ids: Vec<i64> = changes.iter().filter_map(|change| change.event["documentKey"]["_id"].as_i64()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..5_000).collect::<Vec<i64>>(), "each document copied once: the copy went on, not over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_through_iggy_replicates_a_collection_despite_crashes() {
    let Some(setup) = Setup::new("round_trip_through_iggy_replicates_a_collection_despite_crashes").await else {
        return;
    };
    round_trip_despite_crashes(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_a_round_trip_replicates_a_collection_despite_crashes() {
    let test = "on_iggy_server_0_9_a_round_trip_replicates_a_collection_despite_crashes";
    let Some(setup) = Setup::new_0_9(test).await else { return };
    round_trip_despite_crashes(&setup).await;
}

/// Out of collection `a` into the topic, and back into `b`, each pipeline
/// killed once mid-run: `b` ends equal to `a`.
async fn round_trip_despite_crashes(setup: &Setup) {
    let source_a = setup.collection("a").await;
    source_a.insert_many((0..500).map(|i| doc! { "_id": i, "v": 0, "gone": false })).await.unwrap();
    let outbound = setup.copying("a").set("source.mongodb.full_document", "update-lookup");
    let inbound = setup.replicate_into_b();
    let (out, into_b) = setup.start_round_trip(&outbound, &inbound).await;

    for i in 0..200 {
        match i % 4 {
            0 => drop(
                source_a
                    .update_one(doc! { "_id": i }, doc! { "$set": { "v": 1 }, "$unset": { "gone": "" } })
                    .await
                    .unwrap(),
            ),
            1 => drop(source_a.replace_one(doc! { "_id": i }, doc! { "v": 2 }).await.unwrap()),
            2 => drop(source_a.delete_one(doc! { "_id": i }).await.unwrap()),
            _ => drop(source_a.insert_one(doc! { "_id": 1_000 + i, "v": 3 }).await.unwrap()),
        }
        if i == 60 {
            out.task.abort();
        }
        if i == 120 {
            into_b.task.abort();
        }
    }
    let out = RunningPipeline::start(outbound.config());
    let into_b = RunningPipeline::start(inbound.config());
    let expected = snapshot(&source_a).await;
    let target_b = setup.collection("b").await;
    wait::until("b to equal a", PATIENCE, || async { (snapshot(&target_b).await == expected).then_some(()) }).await;
    out.stop().await.unwrap();
    into_b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_history_fails_clearly_and_restart_from_now_goes_on() {
    let Some(setup) = Setup::new("lost_history_fails_clearly_and_restart_from_now_goes_on").await else { return };
    // A stored position the server has never heard of, as if the oplog had
    // rolled past it.
    let iggy = setup.iggy.client().await;
    let positions = ferry::resume::checkpoint_topic("changes");
    setup.iggy.ensure_topic(&setup.stream, &positions, 1).await;
    let lost = ferry::resume::ChangePosition::Stream {
        token: doc! { "_data": "826A0000000000000000" },
        cluster_time: Some((1, 1)),
    };
    ferry_tests::pipelines::produce(&iggy, &setup.stream, &positions, [lost.to_json().into_bytes()]).await;

    let failing = RunningPipeline::start(setup.pipeline().set("source.mongodb.collection", "readings").config());
    let outcome = tokio::time::timeout(PATIENCE, failing.task).await.expect("it stops by itself").unwrap();
    let error = error_chain(&outcome.unwrap_err());
    assert!(error.contains("cannot resume: MongoDB no longer has the history"), "{error}");
    assert!(error.contains("on_history_lost = \"copy-existing\""), "says how to recover: {error}");

    let recovering = setup.pipeline().set("source.mongodb.collection", "readings");
    let recovering =
        RunningPipeline::start(recovering.set("source.mongodb.on_history_lost", "restart-from-now").config());
    let readings = setup.collection("readings").await;
    // Written until one shows up: the stream starts "now", whenever that is.
    wait::until("a change after the restart", PATIENCE, || async {
        readings.insert_one(doc! {}).await.unwrap();
        (!setup.changes().await.is_empty()).then_some(())
    })
    .await;
    recovering.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_stream_keeps_its_position_fresh_without_producing() {
    let Some(setup) = Setup::new("a_filtered_stream_keeps_its_position_fresh_without_producing").await else { return };
    let deletes =
        setup.watching("readings").set("source.mongodb.pipeline", r#"[{"$match": {"operationType": "delete"}}]"#);
    let pipeline = RunningPipeline::start(deletes.config());
    let readings = setup.collection("readings").await;
    let iggy = setup.iggy.client().await;
    let positions = ferry::resume::checkpoint_topic("changes");
    wait::until("a stored position", PATIENCE, || async {
        readings.insert_one(doc! {}).await.unwrap();
        (!read_topic(&iggy, &setup.stream, &positions).await.is_empty()).then_some(())
    })
    .await;
    pipeline.stop().await.unwrap();
    assert!(setup.changes().await.is_empty(), "nothing passed the filter, yet the position moved");
    let stored = read_topic(&iggy, &setup.stream, &positions).await;
    let last = std::str::from_utf8(&stored.last().unwrap().payload).unwrap().to_owned();
    assert!(matches!(
        ferry::resume::ChangePosition::from_json(&last),
        Some(ferry::resume::ChangePosition::Stream { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_watch_sees_every_database() {
    let Some(setup) = Setup::new("a_deployment_watch_sees_every_database").await else { return };
    let config = setup.pipeline().set("source.mongodb.start", from_now()).remove("source.mongodb.database");
    let pipeline = RunningPipeline::start(config.config());
    let client = setup.mongo.client().await;
    let other = unique("other");
    client.database(&other).collection::<Document>("things").insert_one(doc! { "_id": 1 }).await.unwrap();
    setup.collection("items").await.insert_one(doc! { "_id": "marker" }).await.unwrap();
    let changes = setup.wait_for_marker("items").await;
    pipeline.stop().await.unwrap();
    let databases: Vec<&str> = changes.iter().filter_map(|change| change.event["ns"]["db"].as_str()).collect();
    assert!(databases.contains(&other.as_str()) && databases.contains(&setup.database.as_str()), "{databases:?}");
}

/// The README's round trip, both pipeline files started together on fresh
/// names, many times over. Whichever creates the topic first, the other may
/// see it before its partitions exist (Iggy makes a topic, then its
/// partitions) and must wait for them; every run ends with the replica equal
/// to the source.
///
/// Where the race falls depends on how long each pipeline takes to reach
/// the topic, so the runs sweep the replica pipeline's start across the
/// change pipeline's first write (with compiled transforms cached, as for
/// `ferry run`): some runs land in the window.
///
/// The writes also overlap the copy in some runs. That found a gap: the copy
/// once took its starting point from a cluster time (`ping`'s
/// `operationTime`), which SecantusDB can hand out past a write still
/// committing; the copy missed that write and so did the stream. The copy now
/// starts from a change stream's resume token (see `ChangeStream::starting_point`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_trip_pipelines_started_together_replicate_every_time() {
    const RUNS: u32 = 24;
    const SWEEP_STEP: Duration = Duration::from_millis(4);
    let Some(setup) = Setup::new("the_round_trip_pipelines_started_together_replicate_every_time").await else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let warm = ferry::wasm::WasmRuntime::new(Some(ferry::wasm::CompileCache::new(cache.path()))).unwrap();
    for transform in &setup.pipeline_file("changes-to-mongo.toml").transforms {
        warm.load(transform).unwrap();
    }
    for run in 0..RUNS {
        let (stream, database) = (unique("round-trip"), unique("iot"));
        let (mut outbound, mut inbound) =
            (setup.pipeline_file("readings-changes.toml"), setup.pipeline_file("changes-to-mongo.toml"));
        let Route::ChangesToIggy { source: watched, sink: produced } = &mut outbound.route else {
            panic!("readings-changes reads MongoDB and produces to Iggy");
        };
        watched.database = Some(database.clone());
        produced.stream = stream.clone();
        outbound.dead_letter.as_mut().expect("readings-changes keeps dead letters").stream = stream.clone();
        let Route::IggyToMongo { source: consumed, sink: replica } = &mut inbound.route else {
            panic!("changes-to-mongo reads Iggy and writes MongoDB");
        };
        consumed.stream = stream.clone();
        replica.database = database.clone();

        let client = setup.mongo.client().await;
        let readings = client.database(&database).collection::<Document>("readings");
        readings.insert_many((0..50).map(|i| doc! { "_id": i, "v": 0 })).await.unwrap();
        let out = RunningPipeline::start_cached(outbound, cache.path());
        tokio::time::sleep(SWEEP_STEP * run).await;
        let back = RunningPipeline::start_cached(inbound, cache.path());
        for i in 0..30 {
            match i % 3 {
                0 => drop(readings.update_one(doc! { "_id": i }, doc! { "$set": { "v": 1 } }).await.unwrap()),
                1 => drop(readings.delete_one(doc! { "_id": i }).await.unwrap()),
                _ => drop(readings.insert_one(doc! { "_id": 100 + i, "v": 2 }).await.unwrap()),
            }
        }
        let expected = snapshot(&readings).await;
        let replica = client.database(&database).collection::<Document>("readings_replica");
        let replicated =
            wait::until_or_none(PATIENCE, || async { (snapshot(&replica).await == expected).then_some(()) });
        if replicated.await.is_none() {
            let (out, back) = (out.stop().await, back.stop().await);
            let differences = differences(&expected, &snapshot(&replica).await);
            panic!(
                "run {run}: the replica never equalled the source ({differences}); readings-changes: {out:?}, \
                 readings-replica: {back:?}"
            );
        }
        out.stop().await.unwrap_or_else(|error| panic!("run {run}: readings-changes: {}", error_chain(&error)));
        back.stop().await.unwrap_or_else(|error| panic!("run {run}: readings-replica: {}", error_chain(&error)));
    }
}

/// Iggy creates a topic and then its partitions, so a process can see the
/// topic with none (another pipeline's `create` raced this one's). Such a
/// topic is waited for, then used: nothing panics, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_without_partitions_yet_is_waited_for_then_used() {
    let Some(setup) = Setup::new("a_topic_without_partitions_yet_is_waited_for_then_used").await else { return };
    let iggy = setup.iggy.client().await;
    setup.iggy.ensure_topic(&setup.stream, "changes", 0).await;
    let pipeline = RunningPipeline::start(setup.watching("readings").config());
    let readings = setup.collection("readings").await;
    readings.insert_many((0..20).map(|i| doc! { "_id": i })).await.unwrap();
    logs::wait_for(&format!("the topic {}/changes has no partitions yet", setup.stream), PATIENCE).await;
    assert!(!pipeline.task.is_finished(), "the pipeline waits for the partitions");

    let (stream, topic) = (Identifier::named(&setup.stream).unwrap(), Identifier::named("changes").unwrap());
    iggy.create_partitions(&stream, &topic, 3).await.unwrap();
    let changes = wait::until("twenty changes", PATIENCE, || async {
        let changes = setup.changes().await;
        (changes.len() >= 20).then_some(changes)
    })
    .await;
    pipeline.stop().await.unwrap();
    let mut keys: Vec<String> = changes.iter().map(|change| change.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!((changes.len(), keys.len()), (20, 20), "each change once");
}

/// Each message says which transform versions made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_say_which_transform_version_made_them() {
    let Some(setup) = Setup::new("messages_say_which_transform_version_made_them").await else { return };
    let pipeline = RunningPipeline::start(setup.watching("readings").transform("identity", guests::IDENTITY).config());
    setup.collection("readings").await.insert_one(doc! { "_id": "marker" }).await.unwrap();
    setup.wait_for_marker("readings").await;
    pipeline.stop().await.unwrap();
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(guests::IDENTITY).unwrap()));
    let client = setup.iggy.client().await;
    let messages = read_topic(&client, &setup.stream, "changes").await;
    assert!(!messages.is_empty());
    for message in &messages {
        assert_eq!(header(message, "ferry-transform"), Some(format!("identity@{}", &sha[..12])));
    }
}

/// One document per BSON type (its edge values side by side), and `_id`s
/// of several types, as `mongo` can store them: SecantusDB (pymongo
/// underneath) refuses dates past 9999-12-31, which MongoDB stores like any
/// other 64-bit millisecond count, so those are left out there.
fn every_bson_type(mongo: &MongoServer) -> Vec<Document> {
    use mongodb::bson::spec::BinarySubtype;
    use mongodb::bson::{Binary, DateTime, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp, oid::ObjectId};
    let decimal = |text: &str| text.parse::<Decimal128>().unwrap();
    let regex = |pattern: &str, options: &str| Regex {
        pattern: pattern.try_into().unwrap(),
        options: options.try_into().unwrap(),
    };
    let binary = |subtype, bytes: &[u8]| Bson::Binary(Binary { subtype, bytes: bytes.to_vec() });
    vec![
        doc! { "_id": "double", "v": [1.5, -0.0, 5.0, 1e308, f64::MIN_POSITIVE, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] },
        doc! { "_id": "int32", "v": [0_i32, 7_i32, i32::MIN, i32::MAX] },
        doc! { "_id": "int64", "v": [0_i64, 7_i64, -7_i64, i64::from(i32::MAX) + 1, i64::MIN, i64::MAX],
        "nested": { "small": 1_i64, "list": [[2_i64]] } },
        doc! { "_id": 5_i64, "what": "an Int64 _id that fits 32 bits" },
        doc! { "_id": 6_i32, "what": "an Int32 _id" },
        doc! { "_id": ObjectId::parse_str("65f1a2b3c4d5e6f708192a3b").unwrap(), "what": "an ObjectId _id" },
        doc! { "_id": { "region": "eu", "n": 8_i64 }, "what": "a document _id" },
        doc! { "_id": "string", "v": ["", "ünïcødé ✓", "quote \" backslash \\ newline \n tab \t", "\u{1F600}"] },
        doc! { "_id": "document", "v": { "empty": {}, "deep": { "a": { "b": { "c": 1 } } } } },
        doc! { "_id": "array", "v": [[], [1, "two", 3.0, null, [true]]] },
        doc! { "_id": "binary", "v": [
            binary(BinarySubtype::Generic, &[0, 1, 255]),
            binary(BinarySubtype::Generic, &[]),
            binary(BinarySubtype::Uuid, &[7; 16]),
            binary(BinarySubtype::Md5, &[9; 16]),
            binary(BinarySubtype::UserDefined(0x80), b"mine"),
        ] },
        doc! { "_id": "boolean", "v": [true, false] },
        doc! { "_id": "date", "v": [
            DateTime::from_millis(0), DateTime::from_millis(-1), DateTime::from_millis(1_795_662_000_123),
            DateTime::from_millis(253_402_300_799_999), DateTime::from_millis(-62_135_596_800_000),
        ] },
        match mongo.is_secantusdb() {
            false => {
                doc! { "_id": "far dates", "v": [DateTime::from_millis(253_402_300_800_000), DateTime::MAX, DateTime::MIN] }
            }
            true => doc! { "_id": "far dates", "v": "refused by SecantusDB" },
        },
        doc! { "_id": "null", "v": null },
        doc! { "_id": "regex", "v": [regex("^a.*b$", "imsx"), regex("/", "")] },
        doc! { "_id": "javascript", "v": Bson::JavaScriptCode("function () { return 1; }".into()),
        "scoped": Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code: "x + 1".into(), scope: doc! { "x": 1 } }) },
        doc! { "_id": "timestamp", "v": [Timestamp { time: 1, increment: 1 }, Timestamp { time: u32::MAX, increment: u32::MAX }] },
        doc! { "_id": "decimal128", "v": [decimal("1.10"), decimal("-0"), decimal("NaN"), decimal("Infinity"), decimal("-Infinity"),
        decimal("9.999999999999999999999999999999999E+6144"), decimal("1E-6176")] },
        doc! { "_id": "minmax", "v": [Bson::MinKey, Bson::MaxKey] },
    ]
}

/// Each document by `_id`, as canonical Extended JSON: equal only if every
/// value has the same type and bits (NaN included).
async fn canonical(collection: &mongodb::Collection<Document>) -> BTreeMap<String, String> {
    let documents: Vec<Document> = collection.find(doc! {}).await.unwrap().try_collect().await.unwrap();
    documents
        .into_iter()
        .map(|document| {
            let id = document.get("_id").cloned().unwrap().into_canonical_extjson().to_string();
            (id, Bson::Document(document).into_canonical_extjson().to_string())
        })
        .collect()
}

/// Inserts [`every_bson_type`] into `a`, streams the changes to Iggy as
/// `format`, replicates them into `b` with cdc-replicate, and returns both
/// collections as canonical Extended JSON.
async fn round_trip_every_type(setup: &Setup, format: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let source_a = setup.collection("a").await;
    let outbound = setup.watching("a").set("source.mongodb.format", format);
    let (out, into_b) = setup.start_round_trip(&outbound, &setup.replicate_into_b()).await;
    let documents = every_bson_type(&setup.mongo);
    for document in &documents {
        source_a.insert_one(document).await.unwrap_or_else(|error| panic!("{document}: {error}"));
    }
    let expected = canonical(&source_a).await;
    assert_eq!(expected.len(), documents.len());
    let target_b = setup.collection("b").await;
    let replicated = wait::until("every document in b", PATIENCE, || async {
        let replicated = canonical(&target_b).await;
        (replicated.len() >= expected.len()).then_some(replicated)
    })
    .await;
    out.stop().await.unwrap();
    into_b.stop().await.unwrap();
    (expected, replicated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bson_type_survives_change_stream_iggy_cdc_replicate_and_back() {
    let Some(setup) = Setup::new("every_bson_type_survives_change_stream_iggy_cdc_replicate_and_back").await else {
        return;
    };
    let (expected, replicated) = round_trip_every_type(&setup, "json").await;
    for (id, document) in &expected {
        assert_eq!(replicated.get(id), Some(document), "the document {id} changed on the way");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_format_relaxed_json_an_int64_that_fits_32_bits_comes_back_an_int32() {
    let Some(setup) = Setup::new("with_format_relaxed_json_an_int64_that_fits_32_bits_comes_back_an_int32").await
    else {
        return;
    };
    let (expected, replicated) = round_trip_every_type(&setup, "relaxed-json").await;
    let int64 = replicated.get(r#""int64""#).expect("the int64 document");
    assert!(int64.contains(r#"{"$numberInt":"7"}"#) && !int64.contains(r#"{"$numberLong":"7"}"#), "{int64}");
    assert!(int64.contains(r#"{"$numberLong":"2147483648"}"#), "an Int64 past 32 bits stays one: {int64}");
    // The Int64 _id that fits 32 bits comes back under an Int32 _id.
    assert!(replicated.contains_key(r#"{"$numberInt":"5"}"#) && !replicated.contains_key(r#"{"$numberLong":"5"}"#));
    for (id, document) in expected.iter().filter(|(_, document)| !document.contains("$numberLong")) {
        assert_eq!(replicated.get(id), Some(document), "the document {id} changed on the way");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bson_type_written_as_extended_json_to_iggy_is_stored_as_itself() {
    let Some(setup) = Setup::new("every_bson_type_written_as_extended_json_to_iggy_is_stored_as_itself").await else {
        return;
    };
    let client = setup.iggy.client().await;
    setup.iggy.ensure_topic(&setup.stream, "documents", 1).await;
    let documents = every_bson_type(&setup.mongo);
    // Canonical and relaxed Extended JSON alike, as producers write either.
    let payloads = documents.iter().enumerate().map(|(index, document)| {
        let bson = Bson::Document(document.clone());
        let json = if index % 2 == 0 { bson.into_canonical_extjson() } else { bson.into_relaxed_extjson() };
        json.to_string().into_bytes()
    });
    ferry_tests::pipelines::produce(&client, &setup.stream, "documents", payloads).await;
    let (iggy, mongo) = (&setup.iggy, &setup.mongo);
    let pipeline =
        PipelineFile::iggy_to_mongo("documents-to-c", iggy, &setup.stream, "documents", mongo, &setup.database, "c")
            .set("source.iggy.consumer_group", "store-c")
            .test_pace();
    let running = RunningPipeline::start(pipeline.config());
    let target_c = setup.collection("c").await;
    let stored = wait::until("every document in c", PATIENCE, || async {
        let stored = canonical(&target_c).await;
        (stored.len() >= documents.len()).then_some(stored)
    })
    .await;
    running.stop().await.unwrap();
    for (index, document) in documents.into_iter().enumerate() {
        // What the producer's JSON says, as bson itself reads it: the
        // document for canonical JSON; for relaxed, an Int64 that fits 32
        // bits is already a bare number there, so an Int32.
        let want = match index % 2 {
            0 => document,
            _ => Document::try_from(Bson::Document(document).into_relaxed_extjson().as_object().unwrap().clone())
                .unwrap(),
        };
        let id = want.get("_id").cloned().unwrap().into_canonical_extjson().to_string();
        let want = Bson::Document(want).into_canonical_extjson().to_string();
        assert_eq!(stored.get(&id), Some(&want), "the document {id} changed on the way");
    }
}
