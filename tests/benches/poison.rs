//! What hanging records cost, wherever they fall: N readings
//! (`FERRY_BENCH_MESSAGES`, default 10 000) in one partition, some of which
//! make the transform loop for ever, through Iggy → probe → MongoDB with a
//! dead-letter topic, with the release `ferry` binary at default settings
//! (batches of 1000, `timeout` 5 s, `record_timeout` 100 ms). Each
//! distribution runs on a topic and database of its own:
//!
//! | distribution      | which readings hang                                            |
//! |-------------------|----------------------------------------------------------------|
//! | none              | none: what the same readings take with nothing to cut           |
//! | 1 % from offset 0 | every hundredth from the first on, so every batch holds ten      |
//! | 1 % clustered     | every 40th of every third batch from the first (25 a batch)     |
//! | one per batch     | one in each batch, at a different place in each (first: 0)     |
//! | 10 % from 0       | every tenth from the first on                                   |
//!
//! For each: seconds from starting `ferry` until the group has committed the
//! last reading, ms per hanging reading (those seconds over the hanging
//! readings) and ms each hanging reading added to the run with none; then a
//! check that every good reading was written once and every hanging one
//! dead-lettered once as timed out.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench poison
//! FERRY_BENCH_BASELINE=path/to/older/ferry cargo bench -p ferry-tests --bench poison
//! FERRY_BENCH_IGGY=0.9 cargo bench -p ferry-tests --bench poison
//! ```
//!
//! `FERRY_BENCH_BASELINE` runs another build the same way, to compare with.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::iggy_link::Message;
use ferry_tests::bench::{servers, size_from_env};
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{reading, source_offset, unique};
use ferry_tests::process_stats::{ferry_binary, stop};
use ferry_tests::servers::{IggyServer, MongoServer};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};

/// Records per poll, and so per transform call: the default.
const BATCH: usize = 1000;

/// Where the hanging readings fall.
#[derive(Clone, Copy)]
enum Distribution {
    None,
    OnePercentFromStart,
    OnePercentClustered,
    OnePerBatch,
    TenPercentFromStart,
}

impl Distribution {
    const ALL: [Distribution; 5] = [
        Distribution::None,
        Distribution::OnePercentFromStart,
        Distribution::OnePercentClustered,
        Distribution::OnePerBatch,
        Distribution::TenPercentFromStart,
    ];

    fn label(self) -> &'static str {
        match self {
            Distribution::None => "none",
            Distribution::OnePercentFromStart => "1 % from offset 0",
            Distribution::OnePercentClustered => "1 % clustered",
            Distribution::OnePerBatch => "one per batch",
            Distribution::TenPercentFromStart => "10 % from offset 0",
        }
    }

    fn hangs(self, i: usize) -> bool {
        let (batch, place) = (i / BATCH, i % BATCH);
        match self {
            Distribution::None => false,
            Distribution::OnePercentFromStart => i.is_multiple_of(100),
            Distribution::OnePercentClustered => batch.is_multiple_of(3) && place.is_multiple_of(40),
            Distribution::OnePerBatch => place == batch * 137 % BATCH,
            Distribution::TenPercentFromStart => i.is_multiple_of(10),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = size_from_env("FERRY_BENCH_MESSAGES", 10_000);
    let (iggy, mongo) = servers("poison bench").await;
    let mut binaries = vec![("this build", ferry_binary())];
    if let Some(baseline) = std::env::var_os("FERRY_BENCH_BASELINE") {
        binaries.push(("baseline", baseline.into()));
    }
    println!("{messages} readings in one partition, batches of {BATCH}, default transform settings");
    println!(
        "{:<11} {:<19} {:>8} {:>13} {:>18} {:>16}",
        "build", "distribution", "hanging", "s to finish", "ms per hanging", "ms added each"
    );
    for (label, binary) in &binaries {
        let mut clean = None;
        for distribution in Distribution::ALL {
            let hanging = (0..messages).filter(|i| distribution.hangs(*i)).count();
            let elapsed = run_once(binary, distribution, messages, &iggy, &mongo).await.as_secs_f64();
            let clean_elapsed = *clean.get_or_insert(elapsed);
            let per_hanging = |seconds: f64| match hanging {
                0 => "".to_owned(),
                _ => format!("{:.0}", seconds * 1000.0 / hanging as f64),
            };
            println!(
                "{label:<11} {:<19} {hanging:>8} {elapsed:>13.2} {:>18} {:>16}",
                distribution.label(),
                per_hanging(elapsed),
                per_hanging(elapsed - clean_elapsed),
            );
        }
        println!("({label}: {})", binary.display());
    }
}

/// Runs `binary` on `messages` readings hanging as `distribution` says, and
/// returns how long it took to commit them all, after checking what arrived.
async fn run_once(
    binary: &Path,
    distribution: Distribution,
    messages: usize,
    iggy: &IggyServer,
    mongo: &MongoServer,
) -> Duration {
    let (stream, database) = (unique("poison"), unique("poison"));
    iggy.ensure_topic(&stream, "readings", 1).await;
    let payloads = (0..messages).map(|i| if distribution.hangs(i) { b"loop".to_vec() } else { reading(i) });
    iggy.produce(&stream, "readings", payloads).await;
    let work = tempfile::tempdir().unwrap();
    let pipeline = work.path().join("poison.toml");
    std::fs::write(&pipeline, pipeline_file(&stream, &database, iggy, mongo)).unwrap();
    let ferry = |command: &str| {
        let mut ferry = Command::new(binary);
        ferry.arg(command).arg(&pipeline).env("FERRY_CACHE_DIR", work.path().join("cache")).env("FERRY_LOG", "error");
        ferry
    };
    // Compile the transform into the cache first, as a deployment would.
    assert!(ferry("validate").stdout(Stdio::null()).status().unwrap().success());

    let started = Instant::now();
    let mut process = ferry("run").stdout(Stdio::null()).spawn().expect("ferry starts");
    // The group commits a batch's offsets once its documents and dead letters
    // are written, so the last reading's commit is the end. Asking Iggy for an
    // offset costs the MongoDB server nothing, unlike counting documents.
    let session = iggy.session().await;
    let topic = session.topic(&stream, "readings").await.unwrap().expect("the topic exists");
    let partition = topic.partitions[0].id;
    while session.stored_offset("bench", &stream, "readings", partition).await.ok().flatten()
        != Some(messages as u64 - 1)
    {
        assert!(started.elapsed() < Duration::from_secs(3600), "not finished within an hour");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    stop(&mut process);
    session.shutdown().await;
    check_exactly_once(distribution, messages, iggy, &stream, mongo, &database).await;
    elapsed
}

fn pipeline_file(stream: &str, database: &str, iggy: &IggyServer, mongo: &MongoServer) -> String {
    PipelineFile::iggy_to_mongo("poison", iggy, stream, "readings", mongo, database, "readings")
        .set("source.iggy.consumer_group", "bench")
        .set("source.iggy.batch_size", BATCH as i64)
        .transform("probe", guests::PROBE)
        .dead_letter(stream, "readings-dlq")
        .text()
}

/// Every good reading written once, every hanging one dead-lettered once, as
/// timed out.
async fn check_exactly_once(
    distribution: Distribution,
    messages: usize,
    iggy: &IggyServer,
    stream: &str,
    mongo: &MongoServer,
    database: &str,
) {
    let documents = mongo.client().await.database(database).collection::<Document>("readings");
    let written: Vec<Document> = documents.find(doc! {}).await.unwrap().try_collect().await.unwrap();
    let mut seqs: BTreeMap<usize, usize> = BTreeMap::new();
    for document in &written {
        let seq = document.get_i64("seq").or_else(|_| document.get_i32("seq").map(i64::from)).unwrap();
        *seqs.entry(seq as usize).or_default() += 1;
    }
    let good: Vec<usize> = (0..messages).filter(|i| !distribution.hangs(*i)).collect();
    assert!(seqs.values().all(|count| *count == 1), "{}: a reading was written twice", distribution.label());
    assert!(seqs.keys().copied().eq(good.iter().copied()), "{}: every good reading is written", distribution.label());
    let letters = iggy.read_topic(stream, "readings-dlq").await;
    let source = |letter: &Message| letter.header("ferry-source").expect("a dead letter names its source");
    let mut lettered: Vec<usize> = letters.iter().map(|letter| source_offset(&source(letter)) as usize).collect();
    lettered.sort_unstable();
    let hanging: Vec<usize> = (0..messages).filter(|i| distribution.hangs(*i)).collect();
    assert_eq!(lettered, hanging, "{}: every hanging reading dead-lettered once", distribution.label());
    for letter in &letters {
        assert_eq!(letter.payload.as_ref(), b"loop");
        let reason = letter.header("ferry-reason").unwrap_or_default();
        assert!(reason.contains("timed out"), "a dead letter says why: {reason}");
    }
}
