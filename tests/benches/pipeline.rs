//! End-to-end speed of an Iggy → sensor-enrich → MongoDB pipeline, next to
//! the raw `insert_many` ceiling of the same MongoDB server, in one run.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench pipeline
//! FERRY_BENCH_MESSAGES=1000000 cargo bench -p ferry-tests --bench pipeline
//! ```
//!
//! Servers come from the test fixtures (iggy-server and secantusd-py, or
//! IGGY_ADDRESS / MONGODB_URI). Every message is produced before the clock
//! starts. Ferry runs as its own process (`target/release/ferry`, or
//! `FERRY_BIN`), so its CPU time and memory are read from /proc alone. The
//! ceiling is measured before and after Ferry's run and averaged, because a
//! server slows as it fills up and whichever runs first would be flattered.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::bench::{servers, size_from_env};
use ferry_tests::guests;
use ferry_tests::pipelines::{produce, reading, unique};
use ferry_tests::process_stats::{cpu_time, ferry_binary, rss_bytes, stop};
use ferry_tests::servers::MongoServer;
use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, WriteConcern};
use sensor_enrich::{Enriched, enrich};

const BATCH: usize = 1000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = size_from_env("FERRY_BENCH_MESSAGES", 200_000);
    let ferry = ferry_binary();
    let (iggy, mongo) = servers("pipeline bench").await;
    let (stream, database) = (unique("bench"), unique("bench"));
    let client = iggy.client().await;
    ferry::iggy_client::ensure_topic(&client, &stream, "readings", 1).await.unwrap();
    println!("producing {messages} sensor readings…");
    produce(&client, &stream, "readings", (0..messages).map(reading)).await;

    let ceiling_before = insert_many_ceiling(&mongo, &database, "ceiling_before", messages).await;

    let work = tempfile::tempdir().unwrap();
    let pipeline = work.path().join("bench.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "bench"
[source.iggy]
address = "{}"
stream = "{stream}"
topic = "readings"
consumer_group = "bench"
batch_size = {BATCH}
[[transforms]]
name = "enrich"
wasm = "{}"
[sink.mongodb]
uri = "{}"
database = "{database}"
collection = "readings"
"#,
            iggy.address(),
            guests::SENSOR_ENRICH,
            mongo.uri()
        ),
    )
    .unwrap();
    let ferry_command = |command: &str| {
        let mut ferry = Command::new(&ferry);
        ferry.arg(command).arg(&pipeline).env("FERRY_CACHE_DIR", work.path().join("cache")).env("FERRY_LOG", "warn");
        ferry
    };
    // Compile the transform into the cache first, as a deployment would.
    assert!(ferry_command("validate").stdout(Stdio::null()).status().unwrap().success());

    let documents = mongo.client().await.database(&database).collection::<Document>("readings");
    let (first_id, last_id) = (format!("{stream}:readings:0:0"), format!("{stream}:readings:0:{}", messages - 1));
    let started = Instant::now();
    let mut process = ferry_command("run").stdout(Stdio::null()).spawn().expect("ferry starts");
    let pid = process.id();
    let (mut warm_rss, mut peak_rss) = (None, 0);
    let (mut first_batch_at, mut start_up_cpu) = (None, Duration::ZERO);
    loop {
        // Until the first batch lands the server is idle and can be asked
        // often; then often enough that the clock stops close to the last
        // write, seldom enough not to load the server the pipeline waits on.
        let pause = if first_batch_at.is_none() { 10 } else { 100 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let rss = rss_bytes(pid);
        peak_rss = peak_rss.max(rss);
        if warm_rss.is_none() && started.elapsed() > Duration::from_secs(2) {
            warm_rss = Some(rss);
        }
        // A reading's document appearing means all before it are written
        // (one partition, written in order); a lookup by _id is cheap, where
        // a count would compete with the pipeline's writes for the server.
        let written = |id: &String| documents.find_one(doc! { "_id": id });
        if first_batch_at.is_none() && written(&first_id).await.ok().flatten().is_some() {
            first_batch_at = Some(started.elapsed());
            start_up_cpu = cpu_time(pid);
        }
        if first_batch_at.is_some() && written(&last_id).await.ok().flatten().is_some() {
            break;
        }
        assert!(process.try_wait().unwrap().is_none(), "ferry exited early");
    }
    let elapsed = started.elapsed();
    let start_up = first_batch_at.expect("set before the loop ends");
    let (cpu, end_rss) = (cpu_time(pid), rss_bytes(pid));
    stop(&mut process);

    let ceiling_after = insert_many_ceiling(&mongo, &database, "ceiling_after", messages).await;
    let ceiling = (ceiling_before + ceiling_after) / 2.0;
    let ferry_rate = messages as f64 / elapsed.as_secs_f64();
    // After the first batch has landed, the rest arrive at this rate.
    let steady_rate = (messages - BATCH) as f64 / (elapsed - start_up).as_secs_f64();
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!();
    println!("messages                {messages}");
    println!(
        "insert_many ceiling     {ceiling:>9.0} docs/s   (mean of {ceiling_before:.0} before and {ceiling_after:.0} after; \
         Rust driver, batches of {BATCH}, same documents and write concern)"
    );
    println!(
        "ferry end to end        {ferry_rate:>9.0} docs/s   ({:.1}% of the ceiling; from process start to the last document)",
        100.0 * ferry_rate / ceiling
    );
    println!(
        "ferry steady state      {steady_rate:>9.0} docs/s   ({:.1}% of the ceiling; after the first batch, {} ms from process start)",
        100.0 * steady_rate / ceiling,
        start_up.as_millis()
    );
    println!(
        "ferry CPU               {:>9.2} µs/message (whole process, start-up included)",
        cpu.as_secs_f64() * 1e6 / messages as f64
    );
    println!(
        "ferry CPU, steady state {:>9.2} µs/message (after the first batch; start-up took {} ms of CPU)",
        (cpu - start_up_cpu).as_secs_f64() * 1e6 / (messages - BATCH) as f64,
        start_up_cpu.as_millis()
    );
    println!(
        "ferry RSS               {:>9.1} MiB after 2 s, {:.1} MiB at the end, {:.1} MiB peak",
        mib(warm_rss.unwrap_or(end_rss)),
        mib(end_rss),
        mib(peak_rss)
    );
}

/// Documents per second that the driver alone reaches inserting exactly the
/// documents Ferry writes (enriched natively, with Ferry's kind of `_id`),
/// in batches like Ferry's and with its write concern.
async fn insert_many_ceiling(mongo: &MongoServer, database: &str, collection: &str, messages: usize) -> f64 {
    let journaled = WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build();
    let collection = mongo.client().await.database(database).collection::<Document>(collection);
    let documents: Vec<Document> = (0..messages)
        .map(|i| {
            let Enriched::Reading(json) = enrich(&reading(i)) else { panic!("readings enrich") };
            let mut document = doc! { "_id": format!("bench-stream:readings:0:{i}") };
            document.extend(ferry::encoding::document::to_document(&json, ferry::record::Encoding::Json).unwrap());
            document
        })
        .collect();
    let started = Instant::now();
    for chunk in documents.chunks(BATCH) {
        collection.insert_many(chunk).ordered(false).write_concern(journaled.clone()).await.unwrap();
    }
    messages as f64 / started.elapsed().as_secs_f64()
}
