//! Parallel transform instances and parallel writes against real servers:
//! what reaches MongoDB, and in what order, is what one instance writing one
//! batch at a time would have written. MongoDB is reached through a delaying
//! proxy with jitter, so writes on different connections really can arrive
//! in another order than they were sent.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_tests::bed::TestBed;
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::RunningPipeline;
use ferry_tests::servers::{Delay, DelayProxy};
use ferry_tests::wait;
use futures::StreamExt;
use mongodb::bson::{Bson, Document, doc};

const PATIENCE: Duration = Duration::from_secs(120);

/// Bytes to and from MongoDB take 5–25 ms each way, varying per chunk.
const JITTERY: Delay = Delay { one_way: Duration::from_millis(5), jitter: Duration::from_millis(20) };

/// The bed, its `readings` topic (one partition: one total order), and a
/// proxy in front of its MongoDB.
struct Setup {
    bed: TestBed,
    proxy: DelayProxy,
}

ferry_tests::setup_on_bed!(Setup);

impl Setup {
    async fn new(test: &str) -> Option<Self> {
        let bed = TestBed::start(test, "parallel").await?;
        bed.iggy.ensure_topic(&bed.stream, "readings", 1).await;
        let proxy = DelayProxy::for_mongodb(bed.mongo.uri(), JITTERY);
        Some(Self { bed, proxy })
    }

    /// sensor-enrich into `readings` through the proxy, with two transform
    /// instances and four writes in flight.
    fn pipeline(&self) -> PipelineFile {
        let through_proxy = self.proxy.mongodb_uri(self.mongo.uri());
        PipelineFile::iggy_to_mongo(
            "parallel",
            &self.iggy,
            &self.stream,
            "readings",
            &self.mongo,
            &self.database,
            "readings",
        )
        .set("sink.mongodb.uri", through_proxy)
        .set("delivery.transform_instances", 2)
        .set("sink.mongodb.max_concurrent_writes", 4)
        .transform("enrich", guests::SENSOR_ENRICH)
        .test_pace()
    }
}

/// A reading of `sensor` carrying `seq`, as sensor-enrich reads them.
fn reading_of(sensor: &str, seq: usize) -> Vec<u8> {
    format!(r#"{{"sensor_id":"{sensor}","temp":21.5,"ts":"2026-12-06T03:00:00Z","seq":{seq}}}"#).into_bytes()
}

fn seq_of(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(seq) => Some(*seq),
        Bson::Int32(seq) => Some(i64::from(*seq)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_of_the_same_documents_are_applied_in_source_order_with_writes_in_parallel() {
    let test = "upserts_of_the_same_documents_are_applied_in_source_order_with_writes_in_parallel";
    let Some(setup) = Setup::new(test).await else { return };
    // Batches of 15: batch b updates sensors g<b % 3>-0..4, three times
    // each. Batches b+1 and b+2 are independent of b and may be written
    // beside it; batch b+3 updates the same documents and must wait for it.
    const READINGS: usize = 3_000;
    let sensor = |seq: usize| format!("g{}-{}", seq / 15 % 3, seq % 5);
    let expected: BTreeMap<String, Vec<i64>> = (0..READINGS).fold(BTreeMap::new(), |mut by_sensor, seq| {
        by_sensor.entry(sensor(seq)).or_insert_with(Vec::new).push(seq as i64);
        by_sensor
    });
    setup.produce("readings", (0..READINGS).map(|seq| reading_of(&sensor(seq), seq))).await;

    // Every change MongoDB applies, in the order it applied them.
    let collection = setup.collection("readings").await;
    let mut changes = collection.watch().await.expect("a change stream on the collection");
    let file = setup.pipeline().set("source.iggy.batch_size", 15).set("sink.mongodb.write", "upsert");
    let pipeline = RunningPipeline::start(file.set("sink.mongodb.key", vec!["sensor_id"]).config());

    // Updates name their document by _id only: each sensor's _id is
    // learnt from the insert that made its document.
    let mut sensor_of_id: BTreeMap<String, String> = BTreeMap::new();
    let mut applied: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for seen in 0..READINGS {
        let event = tokio::time::timeout(PATIENCE, changes.next())
            .await
            .unwrap_or_else(|_| panic!("only {seen} of {READINGS} changes within {PATIENCE:?}"))
            .expect("the change stream goes on")
            .expect("a change event");
        let id = event.document_key.as_ref().and_then(|key| key.get("_id")).map(ToString::to_string);
        let id = id.unwrap_or_else(|| panic!("a change without its document's _id: {event:?}"));
        let (sensor, seq) = match (&event.full_document, &event.update_description) {
            (Some(document), _) => {
                let sensor = document.get_str("sensor_id").expect("a sensor_id").to_owned();
                sensor_of_id.insert(id.clone(), sensor.clone());
                (sensor, seq_of(document.get("seq")))
            }
            (None, Some(update)) => {
                let sensor = sensor_of_id.get(&id).unwrap_or_else(|| panic!("an update before its insert: {event:?}"));
                (sensor.clone(), seq_of(update.updated_fields.get("seq")))
            }
            (None, None) => panic!("a change with neither document nor update: {event:?}"),
        };
        let seq = seq.unwrap_or_else(|| panic!("a change without its seq: {event:?}"));
        applied.entry(sensor).or_default().push(seq);
    }
    pipeline.stop().await.expect("a clean stop");
    assert_eq!(applied.len(), expected.len(), "one document per sensor");
    for (sensor, seqs) in &expected {
        assert_eq!(applied.get(sensor), Some(seqs), "the updates of {sensor} were applied out of source order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_killed_with_instances_and_writes_in_parallel_writes_each_record_once() {
    let test = "a_pipeline_killed_with_instances_and_writes_in_parallel_writes_each_record_once";
    let Some(setup) = Setup::new(test).await else { return };
    const READINGS: i64 = 10_000;
    setup.produce("readings", (0..READINGS as usize).map(|seq| reading_of(&format!("s{}", seq % 20), seq))).await;
    let file = setup.pipeline().set("source.iggy.batch_size", 100);
    let first = RunningPipeline::start(file.config());
    // Killed with writes in flight: a few hundred documents in, not all.
    wait::until("the first batches written", PATIENCE, || async {
        (setup.count("readings", doc! {}).await >= 300).then_some(())
    })
    .await;
    first.abort().await;
    let before = setup.count("readings", doc! {}).await;
    assert!(before < READINGS as u64, "the crash came mid-run ({before} written)");

    let second = RunningPipeline::start(file.config());
    wait::until("every reading written", PATIENCE, || async {
        (setup.count("readings", doc! {}).await >= READINGS as u64).then_some(())
    })
    .await;
    second.stop().await.expect("a clean stop");
    let mut seqs: Vec<i64> = setup
        .documents("readings")
        .await
        .iter()
        .filter_map(|document: &Document| seq_of(document.get("seq")))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..READINGS).collect::<Vec<i64>>(), "each reading written exactly once");
}
