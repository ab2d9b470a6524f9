//! Iggy → WebAssembly → MongoDB pipelines against real servers: nothing
//! lost, nothing written twice, through crashes, outages and bad data.

use std::time::Duration;

use ferry::pipeline::PipelineError;
use ferry_tests::bed::TestBed;
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{RunningPipeline, dead_letter_offset, header, reading, unique};
use ferry_tests::servers::{IggyServer, MongoServer};
use ferry_tests::{logs, wait};
use iggy::prelude::{Identifier, PartitionClient};
use mongodb::bson::{Bson, Document, doc};

const PATIENCE: Duration = Duration::from_secs(90);

/// The bed, with the topic the pipelines read.
struct Setup {
    bed: TestBed,
    topic: String,
}

ferry_tests::setup_on_bed!(Setup);

impl Setup {
    async fn new(test: &str, partitions: u32) -> Option<Self> {
        Some(Self::on(TestBed::start(test, "sensors").await?, partitions).await)
    }

    /// The setup on `bed`, its `readings` topic made with `partitions`.
    async fn on(bed: TestBed, partitions: u32) -> Self {
        bed.iggy.ensure_topic(&bed.stream, "readings", partitions).await;
        Self { bed, topic: "readings".to_owned() }
    }

    /// The sensors pipeline: the topic through sensor-enrich into `readings`.
    fn pipeline(&self) -> PipelineFile {
        self.without_transforms().transform("enrich", guests::SENSOR_ENRICH)
    }

    /// The sensors pipeline with no transform. Two transform instances
    /// (once it has one) and, by default, four writes in flight: the
    /// crashes and failovers here run with both in parallel.
    fn without_transforms(&self) -> PipelineFile {
        let (iggy, mongo) = (&self.iggy, &self.mongo);
        PipelineFile::iggy_to_mongo(
            "sensors-to-mongo",
            iggy,
            &self.stream,
            &self.topic,
            mongo,
            &self.database,
            "readings",
        )
        .set("source.iggy.consumer_group", "ferry-tests")
        .set("delivery.transform_instances", 2)
        .test_pace()
    }

    /// Where dead letters go: `readings-dlq` in the test's stream.
    fn with_dead_letters(&self, file: PipelineFile) -> PipelineFile {
        file.dead_letter(&self.stream, "readings-dlq")
    }

    async fn produce(&self, payloads: impl IntoIterator<Item = Vec<u8>>) {
        self.bed.produce(&self.topic, payloads).await;
    }

    async fn count(&self) -> u64 {
        self.bed.count("readings", doc! {}).await
    }

    /// Waits until the collection holds `expected` documents.
    async fn wait_for_count(&self, expected: u64) {
        let last = std::sync::atomic::AtomicU64::new(0);
        let what = format!("{expected} documents");
        let waited = tokio::time::timeout(
            PATIENCE,
            wait::until(&what, PATIENCE * 2, || async {
                let count = self.count().await;
                last.store(count, std::sync::atomic::Ordering::Relaxed);
                (count >= expected).then_some(())
            }),
        )
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}; the collection holds {}", last.into_inner());
    }
}

fn seqs(documents: &[Document]) -> Vec<i64> {
    let mut seqs: Vec<i64> = documents
        .iter()
        .map(|document| document.get_i64("seq").or_else(|_| document.get_i32("seq").map(i64::from)).unwrap())
        .collect();
    seqs.sort_unstable();
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_readings_arrive_enriched_exactly_once() {
    let Some(setup) = Setup::new("ten_thousand_readings_arrive_enriched_exactly_once", 1).await else { return };
    setup.produce((0..10_000).map(reading)).await;
    let pipeline = RunningPipeline::start(setup.pipeline().config());
    setup.wait_for_count(10_000).await;
    let counts = pipeline.stop().await.expect("a clean stop");
    assert_eq!(counts.records, 10_000);

    let documents = setup.documents("readings").await;
    assert_eq!(seqs(&documents), (0..10_000).collect::<Vec<i64>>(), "every reading exactly once");
    let first = documents
        .iter()
        .find(|document| document.get_i64("seq").ok() == Some(0) || document.get_i32("seq").ok() == Some(0))
        .unwrap();
    assert_eq!(first.get_f64("temp_f").unwrap(), 32.9);
    assert!(matches!(first.get("ts"), Some(Bson::DateTime(_))), "ts is a BSON date: {first}");
    let id = first.get_str("_id").unwrap();
    assert!(id.starts_with(&format!("{}:readings:", setup.stream)), "deterministic id from the position: {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_go_to_the_dead_letter_topic_with_their_reasons() {
    let Some(setup) = Setup::new("bad_records_go_to_the_dead_letter_topic_with_their_reasons", 1).await else { return };
    // MongoDB itself refuses readings without a sensor_id.
    let client = setup.mongo.client().await;
    let validator = doc! { "$jsonSchema": { "required": ["sensor_id"] } };
    client.database(&setup.database).run_command(doc! { "create": "readings", "validator": validator }).await.unwrap();
    let bad_json = b"not json".to_vec();
    let bad_time = br#"{"sensor_id":"s9","temp":1,"ts":"yesterday","seq":101}"#.to_vec();
    let refused = br#"{"temp":1,"seq":102}"#.to_vec();
    setup.produce([reading(0), bad_json.clone(), bad_time.clone(), refused.clone(), reading(1)]).await;

    let pipeline = RunningPipeline::start(setup.with_dead_letters(setup.pipeline()).config());
    setup.wait_for_count(2).await;
    let iggy = setup.iggy.client().await;
    let letters = wait::until("three dead letters", PATIENCE, || async {
        let letters = ferry_tests::pipelines::read_topic(&iggy, &setup.stream, "readings-dlq").await;
        (letters.len() >= 3).then_some(letters)
    })
    .await;
    let counts = pipeline.stop().await.expect("a clean stop");
    assert_eq!((counts.records, counts.dead_lettered), (5, 3));
    assert_eq!(seqs(&setup.documents("readings").await), [0, 1]);

    let summary: Vec<(Vec<u8>, String, String)> = letters
        .iter()
        .map(|letter| {
            let stage = header(letter, "ferry-stage").unwrap();
            let reason = header(letter, "ferry-reason").unwrap();
            assert_eq!(header(letter, "ferry-pipeline").as_deref(), Some("sensors-to-mongo"));
            assert!(
                header(letter, "ferry-source").unwrap().starts_with(&format!("{}/readings partition ", setup.stream))
            );
            (letter.payload.to_vec(), stage, reason)
        })
        .collect();
    assert_eq!(summary.len(), 3, "{summary:?}");
    assert_eq!((&summary[0].0, summary[0].1.as_str()), (&bad_json, "transform:enrich"));
    assert!(summary[0].2.starts_with("payload is not a JSON object"), "{}", summary[0].2);
    assert_eq!((&summary[1].0, summary[1].1.as_str()), (&bad_time, "transform:enrich"));
    assert!(summary[1].2.contains("is not an RFC 3339 time"), "{}", summary[1].2);
    assert_eq!((&summary[2].0, summary[2].1.as_str()), (&refused, "sink"));
    assert!(summary[2].2.contains("code 121"), "{}", summary[2].2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dead_letter_topic_a_bad_record_stops_the_pipeline_at_its_offset() {
    let Some(setup) = Setup::new("without_a_dead_letter_topic_a_bad_record_stops_the_pipeline_at_its_offset", 1).await
    else {
        return;
    };
    setup.produce([reading(0), b"{oops".to_vec(), reading(1)]).await;
    let pipeline = RunningPipeline::start(setup.pipeline().set("source.iggy.batch_size", 1).config());
    let outcome = tokio::time::timeout(PATIENCE, pipeline.task).await.expect("the pipeline stops by itself").unwrap();
    let Err(PipelineError::Undeliverable { position, stage, reason }) = outcome else {
        panic!("expected an undeliverable record, got {outcome:?}");
    };
    assert!(position.ends_with("offset 1"), "{position}");
    assert_eq!(stage, "transform:enrich");
    assert!(reason.starts_with("payload is not a JSON object"), "{reason}");
    // The record before it was written; nothing after it was.
    assert_eq!(seqs(&setup.documents("readings").await), [0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_killed_mid_batch_and_restarted_still_writes_each_record_once() {
    let Some(setup) = Setup::new("a_pipeline_killed_mid_batch_and_restarted_still_writes_each_record_once", 2).await
    else {
        return;
    };
    every_reading_once_through_a_killed_pipeline(&setup).await;
}

/// 10 000 readings, the pipeline killed mid-run and started again: each
/// reading written once.
async fn every_reading_once_through_a_killed_pipeline(setup: &Setup) {
    setup.produce((0..10_000).map(reading)).await;
    let config = setup.pipeline().set("source.iggy.batch_size", 100);
    let first = RunningPipeline::start(config.config());
    setup.wait_for_count(1).await;
    first.abort().await;
    let written_before_the_crash = setup.count().await;
    assert!(written_before_the_crash < 10_000, "the crash came mid-run ({written_before_the_crash} written)");

    let second = RunningPipeline::start(config.config());
    setup.wait_for_count(10_000).await;
    let generation = setup.iggy.generation().as_str();
    assert_eq!(second.telemetry.report(std::time::SystemTime::now()).iggy_protocol, Some(generation));
    second.stop().await.expect("a clean stop");
    let documents = setup.documents("readings").await;
    assert_eq!(seqs(&documents), (0..10_000).collect::<Vec<i64>>());
    assert!(documents.iter().all(|document| document.get_f64("temp_f").is_ok()), "every reading was enriched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_down_for_twenty_seconds_loses_nothing() {
    let Some(mut setup) = Setup::new("mongodb_down_for_twenty_seconds_loses_nothing", 1).await else { return };
    if !setup.mongo.can_restart() {
        ferry_tests::servers::missing(
            "mongodb_down_for_twenty_seconds_loses_nothing",
            "a MongoDB this test may stop (MONGODB_URI is someone else's)",
        );
        return;
    }
    setup.produce((0..3_000).map(reading)).await;
    let pipeline = RunningPipeline::start(setup.pipeline().set("source.iggy.batch_size", 200).config());
    setup.wait_for_count(3_000).await;

    setup.mongo.stop();
    setup.produce((3_000..6_000).map(reading)).await;
    // The outage itself: the pipeline keeps retrying meanwhile.
    tokio::time::sleep(Duration::from_secs(20)).await;
    setup.mongo.start_again().await;

    setup.wait_for_count(6_000).await;
    pipeline.stop().await.expect("a clean stop");
    assert_eq!(seqs(&setup.documents("readings").await), (0..6_000).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_restarting_mid_run_is_survived() {
    let Some(mut setup) = Setup::new("iggy_restarting_mid_run_is_survived", 1).await else { return };
    if std::env::var_os("IGGY_ADDRESS").is_some() {
        ferry_tests::servers::missing(
            "iggy_restarting_mid_run_is_survived",
            "an Iggy this test may restart (IGGY_ADDRESS is someone else's)",
        );
        return;
    }
    setup.produce((0..2_000).map(reading)).await;
    let pipeline = RunningPipeline::start(setup.pipeline().config());
    setup.wait_for_count(2_000).await;
    setup.iggy.restart().await;
    setup.produce((2_000..4_000).map(reading)).await;
    setup.wait_for_count(4_000).await;
    pipeline.stop().await.expect("a clean stop");
    assert_eq!(seqs(&setup.documents("readings").await), (0..4_000).collect::<Vec<i64>>());
}

/// Readings 0..99 in one partition of a durable iggy-server, killed as if
/// between writing the last ten to the log and indexing them, and started
/// again: 90..99 stay in the log, unindexed.
async fn crashed_between_log_and_index(test: &str) -> Option<Setup> {
    let mut setup = Setup::on(TestBed::around(test, IggyServer::start_durable(test).await?, "sensors").await?, 1).await;
    setup.produce((0..100).map(reading)).await;
    setup.iggy.crash_between_log_and_index(0, 10).await;
    Some(setup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_iggy_server_cannot_read_back_stops_the_pipeline_naming_the_offset() {
    let test = "a_partition_iggy_server_cannot_read_back_stops_the_pipeline_naming_the_offset";
    let Some(setup) = crashed_between_log_and_index(test).await else { return };
    // The restarted server 0.8 gives the next readings the offsets of 90..99 again.
    setup.produce((100..150).map(reading)).await;

    let pipeline = RunningPipeline::start(setup.pipeline().set("source.iggy.batch_size", 10).config());
    let outcome = tokio::time::timeout(PATIENCE, pipeline.task).await.expect("the pipeline stops by itself").unwrap();
    let Err(PipelineError::Service(error)) = outcome else {
        panic!("expected the poll to fail, got {outcome:?}");
    };
    assert!(!error.transient, "retrying cannot read the partition: {error:?}");
    let expected = format!("polling {}/readings partition 0 from offset 90: ", setup.stream);
    assert!(error.what.starts_with(&expected), "{}", error.what);
    assert!(error.what.contains("killed between writing a segment's .log and its .index"), "{}", error.what);
    // Everything before the damage was written, once; nothing was skipped.
    assert_eq!(seqs(&setup.documents("readings").await), (0..90).collect::<Vec<i64>>());
}

/// The soak's `iggy-sink` scenario relies on this cut to measure Ferry
/// rather than iggy-server 0.8's recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_unindexed_tail_cut_before_the_restart_the_partition_reads_back_whole() {
    let test = "with_the_unindexed_tail_cut_before_the_restart_the_partition_reads_back_whole";
    let Some(mut setup) = crashed_between_log_and_index(test).await else { return };
    let trimmed = setup.iggy.restart_recovered().await;
    assert_eq!(trimmed.len(), 1, "one segment ran past its index: {trimmed:?}");
    setup.produce((100..150).map(reading)).await;

    let pipeline = RunningPipeline::start(setup.pipeline().set("source.iggy.batch_size", 10).config());
    setup.wait_for_count(140).await;
    pipeline.stop().await.expect("a clean stop");
    // Readings 90..99 went with the cut; every other one arrives once.
    assert_eq!(seqs(&setup.documents("readings").await), (0..90).chain(100..150).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_in_one_group_share_four_partitions_each_record_once() {
    let Some(setup) = Setup::new("two_pipelines_in_one_group_share_four_partitions_each_record_once", 4).await else {
        return;
    };
    let config = setup.pipeline();
    let first = RunningPipeline::start(config.config());
    let second = RunningPipeline::start(config.config());
    let iggy = setup.iggy.client().await;
    // How many partitions each gets is the server's choice (0.8.0 splits
    // four as three and one); each must get some.
    wait::until("both members to hold partitions", PATIENCE, || async {
        let group = ferry_tests::pipelines::group(&iggy, &setup.stream, &setup.topic, "ferry-tests").await?;
        let held: u32 = group.members.iter().map(|member| member.partitions_count).sum();
        (group.members.len() == 2 && held == 4 && group.members.iter().all(|member| member.partitions_count > 0))
            .then_some(())
    })
    .await;

    setup.produce((0..10_000).map(reading)).await;
    setup.wait_for_count(10_000).await;
    let (first, second) = (first.stop().await.unwrap(), second.stop().await.unwrap());
    assert!(first.records > 0 && second.records > 0, "both shared the work: {first:?} {second:?}");
    assert_eq!(first.records + second.records, 10_000, "no record was processed twice");
    assert_eq!(seqs(&setup.documents("readings").await), (0..10_000).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_batches_and_commits_their_offsets() {
    let Some(setup) = Setup::new("shutdown_finishes_in_flight_batches_and_commits_their_offsets", 2).await else {
        return;
    };
    setup.produce((0..5_000).map(reading)).await;
    let pipeline = RunningPipeline::start(setup.pipeline().set("source.iggy.batch_size", 250).config());
    setup.wait_for_count(5_000).await;
    let counts = pipeline.stop().await.expect("shutdown is a clean stop (exit 0)");
    assert_eq!(counts.records, 5_000);

    // The pipeline left the group; join it to read what it committed.
    use iggy::prelude::{Consumer, ConsumerGroupClient, ConsumerOffsetClient, Identifier};
    let iggy = setup.iggy.client().await;
    let (stream, topic) = (Identifier::named(&setup.stream).unwrap(), Identifier::named(&setup.topic).unwrap());
    let group = Identifier::named("ferry-tests").unwrap();
    iggy.join_consumer_group(&stream, &topic, &group).await.unwrap();
    for partition in ferry_tests::pipelines::partitions(&iggy, &setup.stream, &setup.topic).await {
        let offset = iggy
            .get_consumer_offset(&Consumer::group(group.clone()), &stream, &topic, Some(partition))
            .await
            .unwrap()
            .expect("an offset was committed");
        assert_eq!(offset.stored_offset, offset.current_offset, "partition {partition} committed to its end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_payloads_without_transforms_are_stored_with_their_source_metadata() {
    let Some(setup) = Setup::new("text_payloads_without_transforms_are_stored_with_their_source_metadata", 1).await
    else {
        return;
    };
    setup.produce((0..10).map(|i| format!("line {i}").into_bytes())).await;
    let config =
        setup.without_transforms().set("source.iggy.format", "text").set("sink.mongodb.metadata_field", "_iggy");
    let pipeline = RunningPipeline::start(config.config());
    setup.wait_for_count(10).await;
    pipeline.stop().await.unwrap();

    let documents = setup.documents("readings").await;
    let first =
        documents.iter().find(|document| document.get_str("payload").ok() == Some("line 0")).expect("line 0 stored");
    let metadata = first.get_document("_iggy").unwrap();
    assert_eq!(metadata.get_str("stream").unwrap(), setup.stream);
    assert_eq!(metadata.get_str("topic").unwrap(), "readings");
    assert_eq!(metadata.get_i64("offset").unwrap(), 0);
    assert!(matches!(metadata.get("timestamp"), Some(Bson::DateTime(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_keep_the_latest_reading_per_sensor() {
    let Some(setup) = Setup::new("upserts_keep_the_latest_reading_per_sensor", 1).await else { return };
    // Twenty sensors, each reporting five times; seq grows with time.
    setup.produce((0..100).map(reading)).await;
    let upserts = setup.pipeline().set("source.iggy.batch_size", 7).set("sink.mongodb.write", "upsert");
    let pipeline = RunningPipeline::start(upserts.set("sink.mongodb.key", vec!["sensor_id"]).config());
    let latest = |sensor: i64| 80 + sensor;
    wait::until("the last reading of every sensor", PATIENCE, || async {
        let documents = setup.documents("readings").await;
        (documents.len() == 20 && seqs(&documents) == (80..100).collect::<Vec<i64>>()).then_some(())
    })
    .await;
    pipeline.stop().await.unwrap();
    for document in setup.documents("readings").await {
        let sensor: i64 = document.get_str("sensor_id").unwrap()[1..].parse().unwrap();
        assert_eq!(seqs(std::slice::from_ref(&document)), [latest(sensor)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_starting_at_latest_skips_what_was_already_there() {
    let Some(setup) = Setup::new("a_new_group_starting_at_latest_skips_what_was_already_there", 1).await else {
        return;
    };
    setup.produce((0..100).map(reading)).await;
    let pipeline = RunningPipeline::start(setup.pipeline().set("source.iggy.start", "latest").config());
    let iggy = setup.iggy.client().await;
    wait::until("the group to exist", PATIENCE, || async {
        ferry_tests::pipelines::group(&iggy, &setup.stream, &setup.topic, "ferry-tests")
            .await
            .filter(|group| !group.members.is_empty())
    })
    .await;
    setup.produce((100..150).map(reading)).await;
    setup.wait_for_count(50).await;
    pipeline.stop().await.unwrap();
    assert_eq!(seqs(&setup.documents("readings").await), (100..150).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_an_error_unless_the_pipeline_asks_to_create_it() {
    let Some(setup) = Setup::new("a_missing_topic_is_an_error_unless_the_pipeline_asks_to_create_it", 1).await else {
        return;
    };
    let missing = setup.pipeline().set("source.iggy.topic", "not-there");
    let outcome = RunningPipeline::start(missing.config()).task.await.unwrap();
    let error = ferry::error::error_chain(&outcome.unwrap_err());
    assert!(error.contains("not-there does not exist; create it, or set `create = { partitions = N }`"), "{error}");

    let created = missing.set("source.iggy.create.partitions", 2);
    let pipeline = RunningPipeline::start(created.config());
    let iggy = setup.iggy.client().await;
    wait::until("the topic to be created", PATIENCE, || async {
        (ferry_tests::pipelines::partitions(&iggy, &setup.stream, "not-there").await.len() == 2).then_some(())
    })
    .await;
    ferry_tests::pipelines::produce(&iggy, &setup.stream, "not-there", (0..10).map(reading)).await;
    setup.wait_for_count(10).await;
    pipeline.stop().await.unwrap();
}

/// A topic that exists without partitions yet (its creation still under
/// way) is waited for, then consumed, rather than polled as if empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_without_partitions_yet_is_waited_for_then_consumed() {
    let Some(setup) = Setup::new("a_topic_without_partitions_yet_is_waited_for_then_consumed", 0).await else {
        return;
    };
    let pipeline = RunningPipeline::start(setup.pipeline().config());
    logs::wait_for(&format!("the topic {}/{} has no partitions yet", setup.stream, setup.topic), PATIENCE).await;
    assert!(!pipeline.task.is_finished(), "the pipeline waits for the partitions");

    let client = setup.iggy.client().await;
    let (stream, topic) = (Identifier::named(&setup.stream).unwrap(), Identifier::named(&setup.topic).unwrap());
    client.create_partitions(&stream, &topic, 2).await.unwrap();
    setup.produce((0..100).map(reading)).await;
    setup.wait_for_count(100).await;
    pipeline.stop().await.unwrap();
    assert_eq!(seqs(&setup.documents("readings").await), (0..100).collect::<Vec<i64>>());
}

/// With a metadata field, each document says which transform version wrote
/// it: the transform's name and the first 12 hex digits of its component's
/// SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_say_which_transform_version_made_them() {
    let Some(setup) = Setup::new("documents_say_which_transform_version_made_them", 1).await else { return };
    setup.produce((0..5).map(reading)).await;
    let pipeline = RunningPipeline::start(setup.pipeline().set("sink.mongodb.metadata_field", "_source").config());
    setup.wait_for_count(5).await;
    pipeline.stop().await.unwrap();
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(guests::SENSOR_ENRICH).unwrap()));
    for document in setup.documents("readings").await {
        let transforms = document.get_document("_source").unwrap().get_str("transforms").unwrap().to_owned();
        assert_eq!(transforms, format!("enrich@{}", &sha[..12]));
    }
}

/// The probe guest: passes readings through, and hangs or traps on command.
fn probe(setup: &Setup) -> PipelineFile {
    setup.without_transforms().transform("probe", guests::PROBE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_readings_from_the_first_offset_on_are_dead_lettered_and_the_rest_written_once() {
    let test = "hanging_readings_from_the_first_offset_on_are_dead_lettered_and_the_rest_written_once";
    let Some(setup) = Setup::new(test, 1).await else { return };
    // One reading in a hundred makes the transform loop for ever, the very
    // first included: every batch of 1000 holds ten, so no call on a whole
    // batch ever succeeds to learn a deadline from.
    let hangs = |i: &i64| i % 100 == 0;
    let payloads = (0..3000).map(|i| if hangs(&i) { b"loop".to_vec() } else { reading(i as usize) });
    setup.produce(payloads).await;
    let pipeline = RunningPipeline::start(setup.with_dead_letters(probe(&setup)).config());
    setup.wait_for_count(2970).await;
    let iggy = setup.iggy.client().await;
    let letters = wait::until("thirty dead letters", PATIENCE, || async {
        let letters = ferry_tests::pipelines::read_topic(&iggy, &setup.stream, "readings-dlq").await;
        (letters.len() >= 30).then_some(letters)
    })
    .await;
    let counts = pipeline.stop().await.expect("a clean stop");
    assert_eq!((counts.records, counts.dead_lettered), (3000, 30));
    let good: Vec<i64> = (0..3000).filter(|i| !hangs(i)).collect();
    assert_eq!(seqs(&setup.documents("readings").await), good, "every good reading exactly once");
    let mut lettered: Vec<i64> = letters.iter().map(|letter| dead_letter_offset(letter) as i64).collect();
    lettered.sort_unstable();
    assert_eq!(lettered, (0..3000).filter(hangs).collect::<Vec<_>>(), "every hanging reading dead-lettered once");
    for letter in &letters {
        assert_eq!(letter.payload.as_ref(), b"loop");
        let reason = header(letter, "ferry-reason").unwrap();
        assert_eq!(reason, "transform `probe` timed out: one record ran longer than 100ms (record_timeout)");
    }
}

/// Readings that all make the probe trap: a broken transform, not poison.
async fn broken_transform(test: &str, policy: &str) -> Option<(Setup, RunningPipeline)> {
    let setup = Setup::new(test, 1).await?;
    setup.produce((0..300).map(|_| b"trap".to_vec())).await;
    let file = setup.with_dead_letters(probe(&setup)).set("delivery.on_broken_transform", policy);
    let pipeline = RunningPipeline::start(file.config());
    Some((setup, pipeline))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_that_traps_on_every_record_is_reported_broken_and_its_batch_is_held() {
    let test = "a_transform_that_traps_on_every_record_is_reported_broken_and_its_batch_is_held";
    let Some((setup, pipeline)) = broken_transform(test, "back_off").await else { return };
    let reported = wait::until("the transform reported broken", PATIENCE, || async {
        let status = pipeline.telemetry.status();
        status.failing.get("transform").map(|note| (status.state, note.message.clone()))
    })
    .await;
    assert_eq!(reported.0, ferry::telemetry::State::Retrying);
    assert!(reported.1.starts_with("transform `probe` looks broken: "), "{}", reported.1);
    assert!(reported.1.contains("holding the batch, trying it again in"), "{}", reported.1);
    // Held, not ground through: not one record was dead-lettered.
    let iggy = setup.iggy.client().await;
    assert_eq!(ferry_tests::pipelines::read_topic(&iggy, &setup.stream, "readings-dlq").await.len(), 0);
    let counts = pipeline.stop().await.expect("a clean stop");
    assert_eq!((counts.dead_lettered, counts.batches), (0, 0), "nothing was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_broken_transform_stop_a_broken_transform_stops_the_pipeline() {
    let test = "with_on_broken_transform_stop_a_broken_transform_stops_the_pipeline";
    let Some((setup, pipeline)) = broken_transform(test, "stop").await else { return };
    let error = tokio::time::timeout(PATIENCE, pipeline.task).await.expect("it stops").unwrap().unwrap_err();
    assert!(matches!(error, PipelineError::TransformBroken { .. }), "{error:?}");
    assert!(error.to_string().contains("on_broken_transform = \"stop\""), "{error}");
    let iggy = setup.iggy.client().await;
    assert_eq!(ferry_tests::pipelines::read_topic(&iggy, &setup.stream, "readings-dlq").await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_broken_transform_dead_letter_every_record_is_dead_lettered_and_the_transform_reported() {
    let test = "with_on_broken_transform_dead_letter_every_record_is_dead_lettered_and_the_transform_reported";
    let Some((setup, pipeline)) = broken_transform(test, "dead_letter").await else { return };
    let iggy = setup.iggy.client().await;
    wait::until("300 dead letters", PATIENCE, || async {
        let letters = ferry_tests::pipelines::read_topic(&iggy, &setup.stream, "readings-dlq").await;
        (letters.len() >= 300).then_some(())
    })
    .await;
    let status = pipeline.telemetry.status();
    let note = status.failing.get("transform").expect("reported broken");
    assert!(note.message.contains("dead-lettering what stops it"), "{}", note.message);
    let counts = pipeline.stop().await.expect("a clean stop");
    assert_eq!((counts.records, counts.dead_lettered), (300, 300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_sink_acknowledges_every_reading_and_the_group_commits_them() {
    let test = "a_blackhole_sink_acknowledges_every_reading_and_the_group_commits_them";
    let Some(setup) = Setup::new(test, 2).await else { return };
    setup.produce((0..5000).map(reading)).await;
    // The same pipeline, its MongoDB sink swapped for the blackhole.
    let file = setup.pipeline().remove("sink.mongodb").set("sink.blackhole", toml::Table::new());
    let pipeline = RunningPipeline::start(file.config());
    wait::until("every reading committed", PATIENCE, || async {
        let ferry::telemetry::Position::Iggy(partitions) = pipeline.telemetry.status().position else { return None };
        let committed: u64 =
            partitions.values().filter_map(|partition| partition.committed_offset.map(|offset| offset + 1)).sum();
        (committed == 5000).then_some(())
    })
    .await;
    let counts = pipeline.stop().await.expect("a clean stop");
    assert_eq!((counts.records, counts.outputs, counts.dead_lettered), (5000, 5000, 0));
    assert_eq!(setup.count().await, 0, "nothing reached MongoDB");
}

// The same guarantees on iggy-server 0.9, whose groups hand partitions out
// by a sync and fence stale members (see host/src/iggy_link/v0_9.rs).

async fn setup_0_9(test: &str, partitions: u32) -> Option<Setup> {
    Some(Setup::on(TestBed::around(test, IggyServer::start_0_9(test).await?, "sensors").await?, partitions).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_readings_of_a_0_11_producer_arrive_once_through_a_killed_pipeline() {
    let test = "on_iggy_server_0_9_readings_of_a_0_11_producer_arrive_once_through_a_killed_pipeline";
    let Some(setup) = setup_0_9(test, 2).await else { return };
    every_reading_once_through_a_killed_pipeline(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_bad_records_go_to_the_dead_letter_topic_with_their_reasons() {
    let test = "on_iggy_server_0_9_bad_records_go_to_the_dead_letter_topic_with_their_reasons";
    let Some(setup) = setup_0_9(test, 1).await else { return };
    let bad_time = br#"{"sensor_id":"s9","temp":1,"ts":"yesterday","seq":101}"#.to_vec();
    setup.produce([b"not json".to_vec(), reading(0), bad_time.clone(), reading(1)]).await;
    let pipeline = RunningPipeline::start(setup.with_dead_letters(setup.pipeline()).config());
    setup.wait_for_count(2).await;
    let letters = wait::until("two dead letters", PATIENCE, || async {
        let letters = setup.iggy.read_topic(&setup.stream, "readings-dlq").await;
        (letters.len() >= 2).then_some(letters)
    })
    .await;
    let counts = pipeline.stop().await.expect("a clean stop");
    assert_eq!((counts.records, counts.dead_lettered), (4, 2));
    assert_eq!(seqs(&setup.documents("readings").await), [0, 1]);
    let offsets: Vec<String> = letters.iter().map(|letter| letter.header("ferry-source").unwrap()).collect();
    let source = |offset| format!("{}/readings partition 0 offset {offset}", setup.stream);
    assert_eq!(offsets, [source(0), source(2)]);
    assert_eq!(letters[1].payload.as_ref(), bad_time.as_slice());
    assert!(letters[1].header("ferry-reason").unwrap().contains("is not an RFC 3339 time"), "{letters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_members_killed_and_added_share_the_partitions_and_each_record_is_written_once() {
    let test = "on_iggy_server_0_9_members_killed_and_added_share_the_partitions_and_each_record_is_written_once";
    let Some(setup) = setup_0_9(test, 4).await else { return };
    let config = setup.pipeline().set("source.iggy.batch_size", 50);
    let first = RunningPipeline::start(config.config());
    let second = RunningPipeline::start(config.config());
    setup.produce((0..6_000).map(reading)).await;
    setup.wait_for_count(500).await;
    // A member dies mid-run: the group moves its partitions to the other.
    second.abort().await;
    setup.produce((6_000..9_000).map(reading)).await;
    setup.wait_for_count(7_000).await;
    // A member joins mid-run: the group hands it some partitions.
    let third = RunningPipeline::start(config.config());
    setup.produce((9_000..12_000).map(reading)).await;
    setup.wait_for_count(12_000).await;
    let (first, third) = (first.stop().await.unwrap(), third.stop().await.unwrap());
    assert!(first.records > 0, "{first:?}");
    assert_eq!(seqs(&setup.documents("readings").await), (0..12_000).collect::<Vec<i64>>());
    assert!(third.records > 0, "the member that joined late was given partitions: {third:?}");
}

/// iggy-server 0.9.0-edge.5 (the 0.9 this repository tests on) refuses the
/// `durability` topic options that the released `iggy` 0.11.0 SDK always
/// sends; Ferry then creates the topic without options. A released 0.9.0
/// server takes the SDK's request as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_a_pipeline_asked_to_creates_its_topic_though_the_server_refuses_the_sdks_options() {
    use iggy_0_11::prelude::{Identifier, IggyError, TopicClient, TopicCreateOptions};
    let test = "on_iggy_server_0_9_a_pipeline_asked_to_creates_its_topic_though_the_server_refuses_the_sdks_options";
    let Some(setup) = setup_0_9(test, 1).await else { return };
    let sdk = setup.iggy.client_0_11().await;
    let options = TopicCreateOptions { partitions_count: Some(1), ..TopicCreateOptions::default() };
    let refused = sdk.create_topic(&Identifier::named(&setup.stream).unwrap(), "sdk-made", &options).await;
    assert!(matches!(refused, Err(IggyError::UnsupportedOptionKey(_))), "{refused:?}");

    let config = setup.pipeline().set("source.iggy.create.partitions", 3).set("source.iggy.topic", "made-by-ferry");
    let pipeline = RunningPipeline::start(config.config());
    let session = setup.iggy.session().await;
    let topic = wait::until("the topic Ferry creates", PATIENCE, || async {
        session.topic(&setup.stream, "made-by-ferry").await.unwrap()
    })
    .await;
    assert_eq!(topic.partitions.len(), 3, "{topic:?}");
    setup.iggy.produce(&setup.stream, "made-by-ferry", (0..300).map(reading)).await;
    setup.wait_for_count(300).await;
    pipeline.stop().await.expect("a clean stop");
    assert_eq!(seqs(&setup.documents("readings").await), (0..300).collect::<Vec<i64>>());
}

/// iggy-server 0.9.0-edge.5 keeps a consumer group's members across a
/// kill -9 and restart, though their connections died with it (its
/// recovery says as much in a TODO, `core/metadata/src/impls/recovery.rs`):
/// the member Ferry was before the restart keeps its partitions and nobody
/// reads them. Ferry rejoins as a new member and reads what the group gives
/// it, each message once, and the lag of the held partitions grows. Deleting
/// the group (docs/operating.md) frees them: Ferry creates it again and
/// reads every partition from the start, its writes idempotent. This test
/// pins that server behaviour, so that a server which mends it shows here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_a_restart_leaves_a_dead_member_holding_partitions_until_the_group_is_deleted() {
    use iggy_0_11::prelude::{ConsumerGroupClient, Identifier};
    let test = "on_iggy_server_0_9_a_restart_leaves_a_dead_member_holding_partitions_until_the_group_is_deleted";
    ferry_tests::init_logging();
    let Some(iggy) = IggyServer::start_0_9(test).await else { return };
    let stream = unique("sensors");
    iggy.create_durable_topic(&stream, "readings", 2).await;
    let Some(mongo) = MongoServer::start(test).await else { return };
    let mut bed = TestBed::with(iggy, mongo, "sensors");
    bed.stream = stream;
    let mut setup = Setup { bed, topic: "readings".to_owned() };
    setup.produce((0..2_000).map(reading)).await;
    let pipeline = RunningPipeline::start(setup.pipeline().config());
    setup.wait_for_count(2_000).await;
    setup.iggy.restart().await;

    let sdk = setup.iggy.client_0_11().await;
    let ids = [&setup.stream, &setup.topic, "ferry-tests"].map(|name| Identifier::named(name).unwrap());
    wait::until("Ferry rejoined beside the member of the dead session", PATIENCE, || async {
        let group = sdk.get_consumer_group(&ids[0], &ids[1], &ids[2]).await.unwrap()?;
        (group.members.len() == 2 && group.members.iter().all(|member| member.partitions_count == 1)).then_some(())
    })
    .await;
    // Balanced sends alternate partitions, a send of 1000 each: Ferry's
    // partition gets 1000 of these, the dead member's the other 1000.
    setup.produce((2_000..4_000).map(reading)).await;
    setup.wait_for_count(3_000).await;

    sdk.delete_consumer_group(&ids[0], &ids[1], &ids[2]).await.expect("the group is deleted");
    setup.wait_for_count(4_000).await;
    pipeline.stop().await.expect("a clean stop");
    assert_eq!(seqs(&setup.documents("readings").await), (0..4_000).collect::<Vec<i64>>(), "each reading once");
}

/// A member killed with kill -9 sends no logout: its connection just ends.
/// iggy-server 0.9 takes its partitions back and the group gives them to
/// the members left, here Ferry, which then reads every reading once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_the_partitions_of_a_member_whose_connection_died_pass_to_ferry() {
    use iggy_0_11::prelude::{Client, ConsumerGroupClient, Identifier};
    let test = "on_iggy_server_0_9_the_partitions_of_a_member_whose_connection_died_pass_to_ferry";
    let Some(setup) = setup_0_9(test, 4).await else { return };
    let ids = [&setup.stream, &setup.topic, "ferry-tests"].map(|name| Identifier::named(name).unwrap());
    let other = setup.iggy.client_0_11().await;
    other.create_consumer_group(&ids[0], &ids[1], "ferry-tests").await.unwrap();
    other.join_consumer_group(&ids[0], &ids[1], &ids[2]).await.unwrap();
    let pipeline = RunningPipeline::start(setup.pipeline().config());
    let sdk = setup.iggy.client_0_11().await;
    wait::until("Ferry beside the other member, both holding partitions", PATIENCE, || async {
        let group = sdk.get_consumer_group(&ids[0], &ids[1], &ids[2]).await.unwrap()?;
        (group.members.len() == 2 && group.members.iter().all(|member| member.partitions_count == 2)).then_some(())
    })
    .await;
    // The other member's connection ends without a logout, as a kill -9 ends it.
    other.disconnect().await.unwrap();
    setup.produce((0..4_000).map(reading)).await;
    setup.wait_for_count(4_000).await;
    pipeline.stop().await.expect("a clean stop");
    assert_eq!(seqs(&setup.documents("readings").await), (0..4_000).collect::<Vec<i64>>());
}
