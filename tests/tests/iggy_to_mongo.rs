//! Iggy → WebAssembly → MongoDB pipelines against real servers: nothing
//! lost, nothing written twice, through crashes, outages and bad data.

use std::time::Duration;

use ferry::pipeline::PipelineError;
use ferry_tests::guests;
use ferry_tests::pipelines::{RunningPipeline, parse, produce, read_all, reading, unique};
use ferry_tests::servers::{IggyServer, MongoServer};
use ferry_tests::wait;
use futures::TryStreamExt;
use iggy::prelude::{HeaderKey, IggyMessage};
use mongodb::bson::{Bson, Document, doc};

const PATIENCE: Duration = Duration::from_secs(90);

/// Both servers, with a fresh stream, topic and database.
struct Setup {
    iggy: IggyServer,
    mongo: MongoServer,
    stream: String,
    topic: String,
    database: String,
}

impl Setup {
    async fn new(test: &str, partitions: u32) -> Option<Self> {
        let iggy = IggyServer::start(test).await?;
        let mongo = MongoServer::start(test).await?;
        let (stream, topic, database) = (unique("sensors"), "readings".to_owned(), unique("iot"));
        let client = iggy.client().await;
        ferry::iggy_link::ensure_topic(&client, &stream, &topic, partitions).await.expect("the topic is created");
        Some(Self { iggy, mongo, stream, topic, database })
    }

    /// The sensors pipeline: sensor-enrich, MongoDB, and (optionally) a
    /// dead-letter topic. `source` and `sink` add lines to their sections.
    fn pipeline(&self, source: &str, sink: &str, dead_letter: bool) -> String {
        let dead_letter = match dead_letter {
            true => format!("[dead_letter]\nstream = \"{}\"\ntopic = \"readings-dlq\"\n", self.stream),
            false => String::new(),
        };
        format!(
            r#"
name = "sensors-to-mongo"
[source.iggy]
address = "{address}"
stream = "{stream}"
topic = "{topic}"
consumer_group = "ferry-tests"
poll_interval = "5ms"
{source}
[[transforms]]
name = "enrich"
wasm = "{wasm}"
[sink.mongodb]
uri = "{uri}"
database = "{database}"
collection = "readings"
{sink}
{dead_letter}
[delivery]
retry_initial = "50ms"
retry_max = "1s"
"#,
            address = self.iggy.address(),
            stream = self.stream,
            topic = self.topic,
            wasm = guests::SENSOR_ENRICH,
            uri = self.mongo.uri(),
            database = self.database,
        )
    }

    async fn produce(&self, payloads: impl IntoIterator<Item = Vec<u8>>) {
        produce(&self.iggy.client().await, &self.stream, &self.topic, payloads).await;
    }

    async fn documents(&self, collection: &str) -> Vec<Document> {
        let client = self.mongo.client().await;
        let cursor = client.database(&self.database).collection::<Document>(collection).find(doc! {}).await.unwrap();
        cursor.try_collect().await.unwrap()
    }

    async fn count(&self) -> u64 {
        let client = self.mongo.client().await;
        // A failed count (the server is down) just means "not yet".
        client.database(&self.database).collection::<Document>("readings").count_documents(doc! {}).await.unwrap_or(0)
    }

    /// Waits until the collection holds `expected` documents.
    async fn wait_for_count(&self, expected: u64) {
        wait::until(&format!("{expected} documents"), PATIENCE, || async {
            (self.count().await >= expected).then_some(())
        })
        .await;
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
    let pipeline = RunningPipeline::start(parse(&setup.pipeline("", "", false)));
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
