//! MongoDB change stream → Iggy through faults: ferry killed, and
//! iggy-server crashed under the sink. A writer makes every document go
//! through versions 0, 1, 2, …; the topic must hold each version of each
//! document exactly once, in order.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ferry::iggy_link::Session;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::unique;
use ferry_tests::servers::{IggyServer, MongoServer};
use mongodb::bson::{Document, doc};
use serde_json::Value;

use ferry_tests::ferry_process::FerryProcess;

use crate::ferry_process;
use crate::{Rng, Summary};

/// Changes each document goes through: its insert (`v` 0), then updates.
const VERSIONS: usize = 10;
/// Documents written (or updated) per command.
const CHUNK: usize = 1000;
const DEADLINE: Duration = Duration::from_secs(1800);
/// How long the topic may stop growing short of its target before the run
/// says where the changes stopped (past any retry pause and restart).
const STALL: Duration = Duration::from_secs(120);

struct Run {
    stream: String,
    database: String,
    documents: usize,
}

impl Run {
    fn new(changes: usize) -> Self {
        Self { stream: unique("soak-cdc"), database: unique("soak-cdc"), documents: changes.div_ceil(VERSIONS) }
    }

    fn changes(&self) -> u64 {
        (self.documents * VERSIONS) as u64
    }

    async fn pipeline(&self, iggy: &IggyServer, mongo: &MongoServer) -> String {
        // From before the writer starts, whenever ferry opens the stream; and
        // inside the server's history, so that positions read there can be
        // resumed after a kill: a fresh server has none before its first
        // write (as on MongoDB), so one is made a second (the start's
        // precision) before.
        let seed = mongo.client().await.database(&self.database).collection::<Document>("seed");
        seed.insert_one(doc! { "seeded": true }).await.expect("the seed document inserts");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = humantime::format_rfc3339_seconds(SystemTime::now());
        PipelineFile::changes_to_iggy("soak-changes", mongo, Some(&self.database), iggy, &self.stream, "changes")
            .set("source.mongodb.collection", "items")
            .set("source.mongodb.start", format!("timestamp:{start}"))
            .set("source.mongodb.max_await", "100ms")
            .set("sink.iggy.create.partitions", 3)
            .set("delivery.retry_max", "2s")
            .text()
    }

    /// Inserts every document at version 0, then moves all of them to the
    /// next version, chunk by chunk, until the last.
    async fn write(&self, mongo: &MongoServer) {
        let items = mongo.client().await.database(&self.database).collection::<Document>("items");
        for start in (0..self.documents).step_by(CHUNK) {
            let end = (start + CHUNK).min(self.documents);
            items.insert_many((start..end).map(|i| doc! { "_id": format!("d{i:07}"), "v": 0 })).await.expect("inserts");
        }
        for _ in 1..VERSIONS {
            for start in (0..self.documents).step_by(CHUNK) {
                let end = (start + CHUNK).min(self.documents);
                let range = doc! { "_id": { "$gte": format!("d{start:07}"), "$lt": format!("d{end:07}") } };
                items.update_many(range, doc! { "$inc": { "v": 1 } }).await.expect("updates");
            }
        }
    }

    /// How many messages the topic holds.
    async fn in_topic(&self, session: &Session) -> u64 {
        match session.topic(&self.stream, "changes").await {
            Ok(Some(topic)) => topic.messages(),
            _ => 0,
        }
    }

    async fn wait_in_topic(&self, iggy: &IggyServer, ferry: &mut FerryProcess, target: u64) {
        let started = Instant::now();
        let mut said = Instant::now();
        let (mut last_seen, mut grew) = (0, Instant::now());
        // One session for the whole wait: logging in every 50 ms for a
        // quarter of an hour wore iggy-server down until logins timed out.
        let session = iggy.session().await;
        loop {
            let in_topic = self.in_topic(&session).await;
            if in_topic >= target {
                return;
            }
            ferry.assert_running();
            if in_topic != last_seen {
                (last_seen, grew) = (in_topic, Instant::now());
            }
            if grew.elapsed() > STALL || started.elapsed() > DEADLINE {
                panic!(
                    "{target} changes waited for, and the topic stopped growing at {in_topic}:\n{}",
                    self.diagnosis(iggy, ferry).await
                );
            }
            if said.elapsed() > Duration::from_secs(30) {
                eprintln!("  … {in_topic} of the {target} changes waited for are in the topic");
                said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the changes stopped: what the topic's statistics say, what
    /// reading it finds, what ferry says it read and wrote, its log's tail.
    async fn diagnosis(&self, iggy: &IggyServer, ferry: &FerryProcess) -> String {
        let session = iggy.session().await;
        let mut lines = Vec::new();
        if let Ok(Some(details)) = session.topic(&self.stream, "changes").await {
            for partition in &details.partitions {
                let (read, error) = iggy.read_partition(&self.stream, "changes", partition.id).await;
                lines.push(format!(
                    "partition {}: messages_count {}, current_offset {}, {} messages read, last offset {:?}{}",
                    partition.id,
                    partition.messages,
                    partition.current_offset,
                    read.len(),
                    read.last().map(|message| message.offset),
                    error.map(|error| format!(", then: {error}")).unwrap_or_default(),
                ));
            }
        }
        session.shutdown().await;
        let metrics = ferry.metrics().await;
        for series in ["ferry_records_read_total", "ferry_outputs_written_total", "ferry_batches_total"] {
            lines.push(format!("{series}: {:?}", ferry_tests::ferry::sample(&metrics, series)));
        }
        lines.push(format!("oplog changes written: {}", self.changes()));
        lines.push(format!("ferry's log:\n{}", ferry.log_tail(40)));
        lines.join("\n")
    }

    /// Reads the whole topic: every document's versions in topic order.
    async fn verify(&self, iggy: &IggyServer) -> Tally {
        let session = iggy.session().await;
        let topic = session.topic(&self.stream, "changes").await.expect("the topic can be read");
        session.shutdown().await;
        let mut versions: HashMap<String, Vec<i64>> = HashMap::with_capacity(self.documents);
        let mut tally = Tally::default();
        for partition in topic.map(|topic| topic.partitions).unwrap_or_default().iter().map(|partition| partition.id) {
            let (messages, error) = iggy.read_partition(&self.stream, "changes", partition).await;
            if let Some(error) = error {
                let from = messages.last().map_or(0, |message| message.offset + 1);
                tally.unreadable.push(format!("partition {partition} from offset {from} ({error})"));
            }
            for message in messages {
                tally.messages += 1;
                let event: Value = serde_json::from_slice(&message.payload).expect("a change event");
                let id = event["documentKey"]["_id"].as_str().expect("a document key").to_owned();
                let version = match event["operationType"].as_str() {
                    Some("insert") => event["fullDocument"]["v"].as_i64(),
                    Some("update") => event["updateDescription"]["updatedFields"]["v"].as_i64(),
                    _ => None,
                };
                versions.entry(id).or_default().push(version.expect("a version"));
            }
        }
        let expected: Vec<i64> = (0..VERSIONS as i64).collect();
        tally.documents = versions.len();
        tally.wrong = versions.values().filter(|seen| **seen != expected).count();
        tally.missing = self.documents - versions.len().min(self.documents);
        tally
    }
}

#[derive(Default)]
struct Tally {
    messages: usize,
    documents: usize,
    /// Documents whose versions are not 0, 1, …, each once and in order.
    wrong: usize,
    missing: usize,
    /// Partitions iggy-server refused to read to the end, and where.
    unreadable: Vec<String>,
}

impl Tally {
    fn passed(&self, run: &Run) -> bool {
        self.messages as u64 == run.changes() && self.wrong == 0 && self.missing == 0 && self.unreadable.is_empty()
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in the topic, {} documents, {} out of order or not exactly once, {} missing",
            self.messages, self.documents, self.wrong, self.missing
        )?;
        if !self.unreadable.is_empty() {
            write!(f, "; iggy-server cannot read {}", self.unreadable.join(", "))?;
        }
        Ok(())
    }
}

/// `kills` SIGKILLs of ferry at random points of the topic's growth.
pub async fn killed(
    work: &Path,
    iggy: &IggyServer,
    mongo: &MongoServer,
    changes: usize,
    kills: usize,
    rng: &mut Rng,
) -> Summary {
    let run = Run::new(changes);
    let mut ferry = ferry_process::start(work, &run.pipeline(iggy, mongo).await);
    let mut targets: Vec<u64> = (0..kills).map(|_| rng.below(run.changes())).collect();
    targets.sort_unstable();
    let pauses: Vec<u64> = (0..kills).map(|_| rng.below(500)).collect();
    let started = Instant::now();
    let kill = async {
        for (target, pause) in targets.into_iter().zip(pauses) {
            run.wait_in_topic(iggy, &mut ferry, target).await;
            tokio::time::sleep(Duration::from_millis(pause)).await;
            ferry.crash_and_restart();
        }
    };
    tokio::join!(run.write(mongo), kill);
    run.wait_in_topic(iggy, &mut ferry, run.changes()).await;
    let elapsed = started.elapsed();
    ferry_process::stop(ferry);
    let tally = run.verify(iggy).await;
    Summary {
        passed: tally.passed(&run),
        line: format!(
            "ferry kill -9 ×{kills} over {} changes (change stream → Iggy): {tally}; {:.1} s",
            run.changes(),
            elapsed.as_secs_f64()
        ),
    }
}

/// iggy-server under the sink killed with SIGKILL and restarted on its
/// data folder a third of the way in.
pub async fn iggy_crashed(work: &Path, mongo: &MongoServer, changes: usize) -> Option<Summary> {
    let mut iggy = IggyServer::start_durable("soak: iggy-server crashed under an Iggy sink").await?;
    let run = Run::new(changes);
    let mut ferry = ferry_process::start(work, &run.pipeline(&iggy, mongo).await);
    let started = Instant::now();
    let writer = run.write(mongo);
    // Killed mid-write, iggy-server 0.8 can leave a batch it never
    // acknowledged in the log beyond the index, and then reuses its offsets
    // (see the README); the restart cuts that batch off first (Ferry sends
    // it again, unacknowledged as it is), so what is measured is Ferry's sink.
    let crash = async {
        run.wait_in_topic(&iggy, &mut ferry, run.changes() / 3).await;
        iggy.restart_recovered().await
    };
    let ((), trimmed) = tokio::join!(writer, crash);
    let unindexed: u64 = trimmed.iter().map(|segment| segment.unindexed_bytes).sum();
    run.wait_in_topic(&iggy, &mut ferry, run.changes()).await;
    let elapsed = started.elapsed();
    ferry_process::stop(ferry);
    let tally = run.verify(&iggy).await;
    Some(Summary {
        passed: tally.passed(&run),
        line: format!(
            "iggy-server kill -9 and restart under the sink, {} changes (change stream → Iggy): {tally}; {:.1} s; \
             the kill left {unindexed} unacknowledged bytes beyond the index, cut before the restart",
            run.changes(),
            elapsed.as_secs_f64()
        ),
    })
}
