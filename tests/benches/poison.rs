//! What hanging records cost: N readings (`FERRY_BENCH_MESSAGES`, default
//! 10 000) of which one in a hundred makes the transform loop for ever,
//! through Iggy → probe → MongoDB with a dead-letter topic, with the release
//! `ferry` binary at default settings; the time until every good reading is
//! written and every hanging one dead-lettered, and a check that each is
//! there exactly once with the reason it timed out.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench poison
//! FERRY_BENCH_BASELINE=path/to/older/ferry cargo bench -p ferry-tests --bench poison
//! ```
//!
//! `FERRY_BENCH_BASELINE` runs another build the same way, on a topic of its
//! own, to compare with (say the release before record timeouts).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::bench::{servers, size_from_env};
use ferry_tests::guests;
use ferry_tests::pipelines::{header, produce, read_topic, reading, unique};
use ferry_tests::process_stats::{ferry_binary, stop};
use ferry_tests::servers::{IggyServer, MongoServer};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};

/// One reading in this many hangs.
const EVERY: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = size_from_env("FERRY_BENCH_MESSAGES", 10_000);
    let (iggy, mongo) = servers("poison bench").await;
    let mut binaries = vec![("this build", ferry_binary())];
    if let Some(baseline) = std::env::var_os("FERRY_BENCH_BASELINE") {
        binaries.push(("baseline", baseline.into()));
    }
    println!("{messages} readings, one in {EVERY} hanging, batches of 1000, default transform settings");
    for (run, (label, binary)) in binaries.iter().enumerate() {
        let elapsed = run_once(run, binary, messages, &iggy, &mongo).await;
        println!(
            "{label:<11} {:>8.1} s to finish   {:>7.0} ms per hanging reading   ({})",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / (messages / EVERY) as f64,
            binary.display()
        );
    }
}

fn hangs(i: usize) -> bool {
    i % EVERY == EVERY / 2
}

async fn run_once(run: usize, binary: &Path, messages: usize, iggy: &IggyServer, mongo: &MongoServer) -> Duration {
    let (stream, database) = (unique("poison"), unique("poison"));
    let client = iggy.client().await;
    ferry::iggy_client::ensure_topic(&client, &stream, "readings", 1).await.unwrap();
    produce(&client, &stream, "readings", (0..messages).map(|i| if hangs(i) { b"loop".to_vec() } else { reading(i) }))
        .await;
    let work = tempfile::tempdir().unwrap();
    let pipeline = work.path().join(format!("poison-{run}.toml"));
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "poison"
[source.iggy]
address = "{}"
stream = "{stream}"
topic = "readings"
consumer_group = "bench"
batch_size = 1000
[[transforms]]
name = "probe"
wasm = "{}"
[sink.mongodb]
uri = "{}"
database = "{database}"
collection = "readings"
[dead_letter]
stream = "{stream}"
topic = "readings-dlq"
"#,
            iggy.address(),
            guests::PROBE,
            mongo.uri()
        ),
    )
    .unwrap();
    let ferry = |command: &str| {
        let mut ferry = Command::new(binary);
        ferry.arg(command).arg(&pipeline).env("FERRY_CACHE_DIR", work.path().join("cache")).env("FERRY_LOG", "error");
        ferry
    };
    // Compile the transform into the cache first, as a deployment would.
    assert!(ferry("validate").stdout(Stdio::null()).status().unwrap().success());

    let (good, hanging) = ((0..messages).filter(|i| !hangs(*i)).count(), messages / EVERY);
    let documents = mongo.client().await.database(&database).collection::<Document>("readings");
    let started = Instant::now();
    let mut process = ferry("run").stdout(Stdio::null()).spawn().expect("ferry starts");
    // The dead letters are written before the batch's documents are
    // committed; the last document is the last thing to arrive. Counting
    // scans the collection, so look once a second: this measures seconds.
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if documents.count_documents(doc! {}).await.unwrap() as usize >= good
            && read_topic(&client, &stream, "readings-dlq").await.len() >= hanging
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "not finished within an hour");
    }
    let elapsed = started.elapsed();
    stop(&mut process);

    // Every good reading once, every hanging one dead-lettered once, as timed out.
    let written: Vec<Document> = documents.find(doc! {}).await.unwrap().try_collect().await.unwrap();
    let mut seqs: BTreeMap<i64, usize> = BTreeMap::new();
    for document in &written {
        let seq = document.get_i64("seq").or_else(|_| document.get_i32("seq").map(i64::from)).unwrap();
        *seqs.entry(seq).or_default() += 1;
    }
    assert!(seqs.values().all(|count| *count == 1) && seqs.len() == good, "every good reading exactly once");
    let letters = read_topic(&client, &stream, "readings-dlq").await;
    assert_eq!(letters.len(), hanging, "every hanging reading dead-lettered once");
    for letter in &letters {
        let reason = header(letter, "ferry-reason").unwrap_or_default();
        assert!(reason.contains("timed out"), "a dead letter says why: {reason}");
    }
    elapsed
}
