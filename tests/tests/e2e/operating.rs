//! Operating Ferry against real servers: many pipelines in one process,
//! the admin endpoint's metrics, readiness and status, and credentials kept
//! out of all of it.

use std::path::PathBuf;
use std::time::Duration;

use ferry_tests::bed::TestBed;
use ferry_tests::ferry::RunningFerry;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::reading;
use ferry_tests::servers::{IggyServer, MongoServer};
use ferry_tests::{guests, logs, wait};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(90);

/// The bed, with a folder for the pipeline files Ferry runs.
struct Setup {
    bed: TestBed,
    files: tempfile::TempDir,
}

ferry_tests::setup_on_bed!(Setup);

impl Setup {
    async fn new(test: &str) -> Option<Self> {
        Some(Self::on(TestBed::start(test, "ops").await?))
    }

    fn on(bed: TestBed) -> Self {
        Self { bed, files: tempfile::tempdir().expect("a temporary directory") }
    }

    /// A sensors pipeline named `name` from `topic` (made with two
    /// partitions) to the database `database(name)`, with dead letters.
    fn sensors(&self, name: &str, topic: &str) -> PipelineFile {
        let (iggy, mongo) = (&self.iggy, &self.mongo);
        let database = self.database(name);
        PipelineFile::iggy_to_mongo(name, iggy, &self.stream, topic, mongo, &database, "readings")
            .set("source.iggy.create.partitions", 2)
            .set("source.iggy.batch_size", 100)
            .dead_letter(&self.stream, &format!("{topic}-dlq"))
            .test_pace()
            .set("delivery.call_timeout", "15s")
    }

    /// The sensors pipeline through sensor-enrich.
    fn enriched(&self, name: &str, topic: &str) -> PipelineFile {
        self.sensors(name, topic).transform("enrich", guests::SENSOR_ENRICH)
    }

    /// Writes `file` into the folder Ferry watches; its path.
    fn write(&self, file: &PipelineFile) -> PathBuf {
        file.write(self.files.path())
    }

    /// Sends `payloads` to `topic`, made with two partitions if missing.
    async fn produce(&self, topic: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
        self.iggy.ensure_topic(&self.stream, topic, 2).await;
        self.bed.produce(topic, payloads).await;
    }

    /// The database pipeline `name` writes to (its transform may choose the
    /// collection; sensor-enrich writes `readings`).
    fn database(&self, name: &str) -> String {
        format!("{}-{name}", self.database)
    }

    /// The readings pipeline `name` wrote.
    async fn count(&self, name: &str) -> u64 {
        let client = self.mongo.client().await;
        let readings = client.database(&self.database(name)).collection::<Document>("readings");
        readings.count_documents(doc! {}).await.unwrap_or(0)
    }
}

fn sha256_of(path: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_flowed_and_lag_reaches_zero_when_caught_up() {
    let Some(setup) = Setup::new("metrics_count_what_flowed_and_lag_reaches_zero_when_caught_up").await else {
        return;
    };
    let file = setup.write(&setup.enriched("sensors", "readings").set("delivery.transform_instances", 2));
    let ferry = RunningFerry::start(&[file], false).await;
    wait::until("the pipeline to be ready", PATIENCE, || async { (ferry.get("/ready").await.0 == 200).then_some(()) })
        .await;

    // 900 good readings, 50 the transform drops (no temperature), 50 it
    // fails (not JSON), interleaved.
    let payload = |i: usize| match i % 20 {
        7 => format!(r#"{{"sensor_id":"s{i}","ts":"2026-11-26T03:00:00Z"}}"#).into_bytes(),
        13 => b"not json".to_vec(),
        _ => reading(i),
    };
    // Each send goes to the next partition: half the readings to each.
    setup.produce("readings", (0..500).map(payload)).await;
    setup.produce("readings", (500..1000).map(payload)).await;
    let during = wait::until("records read while flowing", PATIENCE, || async {
        ferry.metric(r#"ferry_records_read_total{pipeline="sensors"}"#).await.filter(|read| *read > 0.0)
    })
    .await;
    assert!(during <= 1000.0, "{during}");

    let series = |name: &str| format!(r#"{name}{{pipeline="sensors"}}"#);
    wait::until("every record accounted for", PATIENCE, || async {
        let written = ferry.metric(&series("ferry_outputs_written_total")).await?;
        let dead = ferry.metric(&series("ferry_records_dead_lettered_total")).await?;
        let dropped = ferry.metric(&series("ferry_records_dropped_total")).await?;
        (written + dead + dropped >= 1000.0).then_some(())
    })
    .await;
    let (_, text) = ferry.get("/metrics").await;
    let metric = |name: &str| ferry_tests::ferry::sample(&text, &series(name));
    assert_eq!(metric("ferry_records_read_total"), Some(1000.0));
    assert_eq!(metric("ferry_records_emitted_total"), Some(900.0));
    assert_eq!(metric("ferry_records_dropped_total"), Some(50.0));
    assert_eq!(metric("ferry_records_dead_lettered_total"), Some(50.0));
    assert_eq!(
        ferry_tests::ferry::sample(&text, r#"ferry_records_dead_lettered_total{pipeline="sensors",stage="transform"}"#),
        Some(50.0)
    );
    assert_eq!(metric("ferry_outputs_written_total"), Some(900.0));
    assert_eq!(
        ferry_tests::ferry::sample(&text, r#"ferry_mongodb_documents_total{pipeline="sensors",write="insert"}"#),
        Some(900.0)
    );
    assert!(metric("ferry_batches_total").is_some_and(|batches| batches >= 10.0), "100 records a batch at most");
    assert!(metric("ferry_read_bytes_total").is_some_and(|bytes| bytes > 40_000.0));
    assert!(metric("ferry_transform_call_duration_seconds_count").is_some_and(|calls| calls >= 10.0));
    assert!(metric("ferry_stage_duration_seconds_count").is_some());
    assert_eq!(
        ferry_tests::ferry::sample(&text, r#"ferry_pipeline_state{pipeline="sensors",state="running"}"#),
        Some(1.0)
    );
    assert_eq!(setup.count("sensors").await, 900);

    // The lag probe reads the committed offsets: 0 once everything is. A
    // probe that ran before the messages arrived also says 0 (empty
    // partitions), so wait for one that has read the heads.
    wait::until("lag 0, with the heads read", PATIENCE, || async {
        let status = ferry.pipeline("sensors").await;
        let heads_read = status["position"]["partitions"]
            .as_array()
            .is_some_and(|partitions| partitions.iter().all(|partition| partition["head_offset"] == 499));
        (heads_read && ferry.metric(&series("ferry_iggy_lag_messages")).await == Some(0.0)).then_some(())
    })
    .await;
    let status = ferry.pipeline("sensors").await;
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["position"]["source"], "iggy", "{status}");
    assert_eq!(status["position"]["lag_messages"], 0, "{status}");
    for partition in status["position"]["partitions"].as_array().unwrap() {
        assert_eq!(partition["committed_offset"], 499, "each partition committed to its end: {status}");
        assert_eq!((&partition["head_offset"], &partition["lag"]), (&Value::from(499), &Value::from(0)), "{status}");
    }
    assert_eq!(status["counts"]["records_read"], 1000);
    assert_eq!(status["iggy_protocol"], "0.8", "{status}");
    let (_, text) = ferry.get("/metrics").await;
    let protocol = |generation| format!(r#"ferry_iggy_protocol_info{{pipeline="sensors",protocol="{generation}"}}"#);
    assert_eq!(ferry_tests::ferry::sample(&text, &protocol("0.8")), Some(1.0));
    assert_eq!(ferry_tests::ferry::sample(&text, &protocol("0.9")), None, "one generation at a time");
    let transform = &status["transforms"][0];
    assert_eq!(
        (&transform["name"], &transform["sha256"]),
        (&json!("enrich"), &json!(sha256_of(guests::SENSOR_ENRICH)))
    );
    // Two instances (the file asks for them), each with its memory.
    let memory = transform["instance_memory_bytes"].as_array().expect("each instance's memory");
    assert_eq!(memory.len(), 2, "{status}");
    assert!(memory.iter().all(|bytes| bytes.as_u64().is_some_and(|bytes| bytes > 0)), "{status}");
    assert_eq!(status["transforms"].as_array().map(Vec::len), Some(1), "{status}");
    let report = ferry.stop().await;
    assert!(report.all_stopped_cleanly(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_mongodb_is_down_and_200_once_it_is_up() {
    ferry_tests::init_logging();
    let test = "ready_is_503_while_mongodb_is_down_and_200_once_it_is_up";
    let Some(iggy) = IggyServer::start(test).await else { return };
    let Some(mongo) = MongoServer::not_started(test).await else { return };
    let mut setup = Setup::on(TestBed::with(iggy, mongo, "ops"));
    let file = setup.write(&setup.enriched("waiting", "readings"));
    let ferry = RunningFerry::start(&[file], false).await;
    let (status, body) = ferry.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    let reason = wait::until("readiness to say MongoDB cannot be reached", PATIENCE, || async {
        let (status, body) = ferry.get_json("/ready").await;
        assert_eq!(status, 503, "{body}");
        let not_ready = &body["not_ready"][0];
        assert_eq!(not_ready["pipeline"], "waiting", "{body}");
        let reason = not_ready["reason"].as_str().unwrap_or_default().to_owned();
        reason.contains("reaching the MongoDB sink").then_some(reason)
    })
    .await;
    assert!(reason.starts_with("retrying (connect): "), "{reason}");
    assert_eq!(ferry.pipeline("waiting").await["state"], "retrying");

    setup.mongo.start_again().await;
    wait::until("ready once MongoDB is up", PATIENCE, || async { (ferry.get("/ready").await.0 == 200).then_some(()) })
        .await;
    let (_, body) = ferry.get_json("/ready").await;
    assert_eq!(body, serde_json::json!({ "ready": true, "not_ready": [] }));
    setup.produce("readings", (0..10).map(reading)).await;
    wait::until("the readings", PATIENCE, || async { (setup.count("waiting").await == 10).then_some(()) }).await;
    assert!(ferry.stop().await.all_stopped_cleanly());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_whose_transform_rejects_its_configuration_stops_alone() {
    let Some(setup) = Setup::new("a_pipeline_whose_transform_rejects_its_configuration_stops_alone").await else {
        return;
    };
    setup.write(&setup.enriched("first", "one"));
    setup.write(&setup.enriched("second", "two"));
    // pii-redact refuses a configuration that names no field.
    let no_fields = toml::Table::from_iter([("fields".to_owned(), toml::Value::Array(Vec::new()))]);
    setup.write(&setup.sensors("third", "three").transform_with("redact", guests::PII_REDACT, no_fields));
    let ferry = RunningFerry::start(&[setup.files.path().to_owned()], false).await;
    setup.produce("one", (0..50).map(reading)).await;
    setup.produce("two", (0..70).map(reading)).await;
    wait::until("both good pipelines to write", PATIENCE, || async {
        (setup.count("first").await == 50 && setup.count("second").await == 70).then_some(())
    })
    .await;

    let third = ferry.pipeline("third").await;
    assert_eq!(third["state"], "failed", "{third}");
    let error = third["last_error"]["message"].as_str().unwrap();
    assert!(error.contains("transform `redact` rejected its configuration"), "{error}");
    let (status, ready) = ferry.get_json("/ready").await;
    assert_eq!(status, 503);
    let not_ready: Vec<&Value> = ready["not_ready"].as_array().unwrap().iter().collect();
    assert_eq!(not_ready.len(), 1, "only the third is not ready: {ready}");
    assert_eq!(not_ready[0]["pipeline"], "third");
    assert!(not_ready[0]["reason"].as_str().unwrap().starts_with("failed: transform `redact`"), "{ready}");
    for name in ["first", "second"] {
        assert_eq!(ferry.pipeline(name).await["state"], "running");
    }
    assert_eq!(ferry.metric(r#"ferry_pipeline_state{pipeline="third",state="failed"}"#).await, Some(1.0));
    assert!(!ferry.finished(), "the others go on");

    let report = ferry.stop().await;
    assert_eq!(report.pipelines["first"], None);
    assert_eq!(report.pipelines["second"], None);
    assert!(report.pipelines["third"].as_deref().is_some_and(|error| error.contains("rejected its configuration")));
    assert!(!report.all_stopped_cleanly(), "ferry run exits non-zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_appear_in_no_metric_status_or_log() {
    let Some(setup) = Setup::new("credentials_appear_in_no_metric_status_or_log").await else { return };
    const MONGO_SECRET: &str = "s3cret-mongo-password";
    const IGGY_SECRET: &str = "s3cret-iggy-password";
    // A MongoDB URI with a password, and an Iggy password the server refuses.
    let uri = setup.mongo.uri().replacen("mongodb://", &format!("mongodb://ferry:{MONGO_SECRET}@"), 1);
    setup.write(&setup.sensors("mongo-creds", "creds").set("sink.mongodb.uri", uri));
    setup.write(&setup.sensors("iggy-creds", "creds2").set("source.iggy.password", IGGY_SECRET));

    // Watching, so that Ferry stays up after both pipelines have stopped.
    setup.produce("creds", (0..5).map(reading)).await;
    let ferry = RunningFerry::start(&[setup.files.path().to_owned()], true).await;
    // The Iggy login fails for good; the MongoDB side fails or runs,
    // whichever this server does with credentials.
    wait::until("the refused login in the status", PATIENCE, || async {
        let status = ferry.pipeline("iggy-creds").await;
        (status["state"] == "failed").then_some(())
    })
    .await;
    wait::until("the other pipeline to settle", PATIENCE, || async {
        let status = ferry.pipeline("mongo-creds").await;
        (status["state"] != "starting").then_some(())
    })
    .await;
    let iggy_error = ferry.pipeline("iggy-creds").await["last_error"]["message"].as_str().unwrap().to_owned();
    let login = format!("logging in to Iggy at {} as iggy: ", setup.iggy.address());
    assert!(iggy_error.contains(&login), "{iggy_error}");

    for path in ["/metrics", "/pipelines", "/ready", "/pipelines/mongo-creds", "/pipelines/iggy-creds"] {
        let (_, body) = ferry.get(path).await;
        for secret in [MONGO_SECRET, IGGY_SECRET] {
            assert!(!body.contains(secret), "{path} shows a credential: {body}");
        }
    }
    ferry.stop().await;
    for secret in [MONGO_SECRET, IGGY_SECRET] {
        assert_eq!(logs::containing(secret), Vec::<String>::new(), "a log line shows a credential");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oplog_headroom_is_the_resume_point_minus_the_oldest_oplog_entry() {
    let Some(setup) = Setup::new("oplog_headroom_is_the_resume_point_minus_the_oldest_oplog_entry").await else {
        return;
    };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(1));
    let (mongo, iggy) = (&setup.mongo, &setup.iggy);
    let changes =
        PipelineFile::changes_to_iggy("changes", mongo, Some(&setup.database), iggy, &setup.stream, "changes")
            .set("source.mongodb.collection", "readings")
            .set("source.mongodb.start", format!("timestamp:{now}"))
            .set("sink.iggy.create.partitions", 2)
            .test_pace();
    let path = setup.write(&changes);
    let ferry = RunningFerry::start(&[path], false).await;
    let client = setup.mongo.client().await;
    let readings = client.database(&setup.database).collection::<Document>("readings");
    readings.insert_many((0..20).map(|i| doc! { "_id": i })).await.unwrap();
    let oldest = client
        .database("local")
        .collection::<Document>("oplog.rs")
        .find_one(doc! {})
        .sort(doc! { "$natural": 1 })
        .await
        .unwrap()
        .expect("the server keeps an oplog")
        .get_timestamp("ts")
        .unwrap()
        .time;

    // Where SecantusDB differs: MongoDB answers the oldest entry's time in
    // serverStatus (`oplog.earliestOptime`), which Ferry asks first;
    // SecantusDB has no such section, so Ferry reads the oplog's first entry.
    if mongo.is_secantusdb() {
        let server_status = client.database("admin").run_command(doc! { "serverStatus": 1, "oplog": 1 }).await.unwrap();
        assert!(
            server_status.get("oplog").is_none(),
            "SecantusDB now answers serverStatus's oplog section: this test no longer reads the oplog's first entry"
        );
    }
    let status = wait::until("the headroom", PATIENCE, || async {
        let status = ferry.pipeline("changes").await;
        status["position"]["oplog_headroom_seconds"].as_f64().is_some().then_some(status)
    })
    .await;
    let resume = humantime::parse_rfc3339(status["position"]["resume_time"].as_str().unwrap()).unwrap();
    let resume = resume.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as f64;
    let headroom = status["position"]["oplog_headroom_seconds"].as_f64().unwrap();
    assert_eq!(headroom, resume - f64::from(oldest), "{status}");
    assert!(resume >= f64::from(oldest), "the resume point is still in the oplog: {status}");
    let metric = ferry.metric(r#"ferry_oplog_headroom_seconds{pipeline="changes"}"#).await;
    assert_eq!(metric, Some(headroom));
    wait::until("caught up: 0 seconds behind", PATIENCE, || async {
        let behind = ferry.metric(r#"ferry_change_stream_behind_seconds{pipeline="changes"}"#).await;
        (behind == Some(0.0)).then_some(())
    })
    .await;
    assert!(ferry.metric(r#"ferry_change_stream_since_last_event_seconds{pipeline="changes"}"#).await.is_some());
    assert!(ferry.stop().await.all_stopped_cleanly());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_mongodb_already_holds_count_as_replays_not_as_writes() {
    let Some(setup) = Setup::new("inserts_mongodb_already_holds_count_as_replays_not_as_writes").await else {
        return;
    };
    setup.produce("readings", (0..200).map(reading)).await;
    let once = setup.write(&setup.enriched("once", "readings"));
    let ferry = RunningFerry::start(std::slice::from_ref(&once), false).await;
    wait::until("the readings", PATIENCE, || async { (setup.count("once").await == 200).then_some(()) }).await;
    let written = r#"ferry_mongodb_documents_total{pipeline="once",write="insert",collection="readings"}"#;
    assert_eq!(ferry.metric(written).await, Some(200.0));
    assert_eq!(ferry.metric(r#"ferry_mongodb_replays_total{pipeline="once"}"#).await, Some(0.0));
    ferry.stop().await;

    // The same readings again, through a new consumer group: every insert
    // finds its document (the same _id, from the same source position).
    let again = setup.write(&setup.enriched("again", "readings").set("sink.mongodb.database", setup.database("once")));
    let ferry = RunningFerry::start(&[again], false).await;
    let replays = wait::until("the replays", PATIENCE, || async {
        ferry
            .metric(r#"ferry_mongodb_replays_total{pipeline="again",collection="readings"}"#)
            .await
            .filter(|n| *n >= 200.0)
    })
    .await;
    assert_eq!(replays, 200.0);
    assert_eq!(ferry.metric(r#"ferry_mongodb_documents_total{pipeline="again",write="insert"}"#).await, Some(0.0));
    assert_eq!(setup.count("once").await, 200, "nothing written twice");
    ferry.stop().await;
}
