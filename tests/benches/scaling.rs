//! Scaling up inside one process: transform instances on a CPU-bound
//! transform, and MongoDB writes in flight against a far-away server. The
//! release `ferry` binary runs as its own process; rates come from its own
//! metrics.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench scaling
//! FERRY_BENCH_PART=cpu cargo bench -p ferry-tests --bench scaling
//! FERRY_BENCH_PART=latency FERRY_BENCH_ONE_WAY_MS=25 cargo bench -p ferry-tests --bench scaling
//! ```
//!
//! - **CPU-bound** (`cpu`; `python` or `identity` for one of its halves):
//!   Iggy → the Python sensor-enrich component → the blackhole with 1, 2
//!   and `auto` transform instances; then the Rust identity component with
//!   1, `auto` and 2. `FERRY_BENCH_ROUNDS` rounds (2) alternate the
//!   settings; each one's best run counts. Targets on the 2-core machine:
//!   Python with 2 instances ≥ 1.7× of 1; identity with `auto` no slower
//!   than with 1 (≥ 0.95×).
//! - **Latency-bound** (`latency`): MongoDB through a proxy that delays each
//!   way (`servers::DelayProxy`). The server's own time per 1000-document
//!   insert is measured first; the delay each way is half of it, at least
//!   50 ms (a cross-region replica set), unless `FERRY_BENCH_ONE_WAY_MS`
//!   sets it. Then, through the same delay: 4 raw `insert_many` writers in
//!   parallel (the SDK alone), Ferry with one write in flight, and Ferry
//!   with its default (4). No transform, so writing is all there is to
//!   wait for. Targets: the default ≥ 0.9× the raw writers, and ≥ 1.8×
//!   one write in flight.
//!
//! `FERRY_BENCH_MESSAGES` sets the size of both (by default 100 000 for
//! Python, fifty times that for identity, and 50 000 writing to MongoDB);
//! `FERRY_BENCH_IGGY` the Iggy generation (0.8 by default).

use std::time::{Duration, Instant};

use ferry_tests::bench::{iggy_generations, iggy_server, size_from_env};
use ferry_tests::bench_run::until_committed;
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{reading, unique};
use ferry_tests::process_stats::ferry_binary;
use ferry_tests::servers::{Delay, DelayProxy, IggyServer, MongoServer};
use ferry_tests::toolchains::python_sensor_enrich;
use mongodb::bson::Document;
use mongodb::options::InsertManyOptions;

const BATCH: usize = 1000;
/// Raw writers in parallel: as many as Ferry's default writes in flight.
const RAW_WRITERS: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let part = std::env::var("FERRY_BENCH_PART").unwrap_or_else(|_| "both".to_owned());
    let generation = *iggy_generations("0.8").first().expect("one generation");
    let iggy = iggy_server("scaling bench", generation).await;
    println!("iggy-server {generation}, {} cores available", cores());
    if ["cpu", "python", "identity", "both"].contains(&part.as_str()) {
        cpu_bound(&iggy, &part).await;
    }
    if part == "latency" || part == "both" {
        latency_bound(&iggy).await;
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

/// A topic of one partition in a stream of its own, holding `messages`
/// sensor readings.
async fn filled_topic(iggy: &IggyServer, messages: usize) -> String {
    let stream = unique("scaling");
    iggy.ensure_topic(&stream, "readings", 1).await;
    println!("producing {messages} sensor readings…");
    iggy.produce(&stream, "readings", (0..messages).map(reading)).await;
    stream
}

/// The bench's pipeline on `stream`, read by consumer group `group`.
fn from_topic(iggy: &IggyServer, stream: &str, group: &str) -> PipelineFile {
    PipelineFile::named("scaling")
        .set("source.iggy.address", iggy.address())
        .set("source.iggy.stream", stream)
        .set("source.iggy.topic", "readings")
        .set("source.iggy.consumer_group", group)
        .set("source.iggy.batch_size", BATCH as i64)
}

async fn cpu_bound(iggy: &IggyServer, part: &str) {
    let messages = size_from_env("FERRY_BENCH_MESSAGES", 100_000);
    let rounds = size_from_env("FERRY_BENCH_ROUNDS", 2);
    let Some(python) = python_sensor_enrich("scaling bench") else { std::process::exit(2) };
    let python = python.display().to_string();
    let (ferry, work) = (ferry_binary(), tempfile::tempdir().unwrap());
    // Identity is about a hundred times as fast: fifty times the readings,
    // so its runs last seconds, not a few of the bench's 50 ms looks.
    let transforms = [
        ("python sensor-enrich", python.as_str(), messages, ["1", "2", "auto"]),
        ("rust identity", guests::IDENTITY, messages * 50, ["1", "auto", "2"]),
    ];
    let mut verdicts = Vec::new();
    for (label, wasm, messages, settings) in transforms {
        if !(["cpu", "both"].contains(&part) || label.contains(part)) {
            continue;
        }
        let stream = filled_topic(iggy, messages).await;
        println!();
        println!("CPU-bound: {messages} readings through {label} into the blackhole, {rounds} rounds");
        println!(
            "{:<22} {:>9} {:>12} {:>12} {:>9} {:>12} {:>12}",
            "transform", "instances", "messages/s", "CPU µs/msg", "RSS MiB", "Ferry cores", "server cores"
        );
        // Rounds alternate the settings, so a slow spell of the shared
        // machine falls on all of them; each setting's best run counts.
        let mut best = [0.0f64; 3];
        // Each setting as Ferry ran it (`auto` with what it came to).
        let mut ran = settings.map(str::to_owned);
        // Each round's rate of every setting: the rounds' own ratios, taken
        // minutes apart from each other but seconds apart within a round.
        let mut rounds_rates = Vec::new();
        for round in 0..rounds {
            let mut rates = [0.0f64; 3];
            for (setting, instances) in settings.iter().enumerate() {
                let value = match instances.parse::<i64>() {
                    Ok(count) => toml::Value::from(count),
                    Err(_) => toml::Value::from(*instances),
                };
                let group = format!("cpu-{}-{round}-{setting}", label.replace(' ', "-"));
                let file = from_topic(iggy, &stream, &group)
                    .set("sink.blackhole", toml::Table::new())
                    .set("delivery.transform_instances", value)
                    .transform("t", wasm);
                let measured = until_committed(&ferry, work.path(), &group, &file, messages, iggy.pid()).await;
                best[setting] = best[setting].max(measured.rate);
                rates[setting] = measured.rate;
                // What `auto` came to, from Ferry's status.
                if *instances == "auto" {
                    ran[setting] = format!("auto ({})", measured.instances);
                }
                println!(
                    "{label:<22} {:>9} {:>12.0} {:>12.2} {:>9.1} {:>12.2} {:>12}",
                    ran[setting],
                    measured.rate,
                    measured.cpu_us,
                    measured.rss_mib,
                    measured.ferry_cores,
                    measured.server_cores.map_or("-".to_owned(), |cores| format!("{cores:.2}")),
                );
            }
            rounds_rates.push(rates);
        }
        // This machine's speed drifts by a fifth within minutes (the
        // rate of one instance alone does): a round's ratio compares runs
        // made close together, and the median of them resists the drift.
        let round_ratios: Vec<String> =
            rounds_rates.iter().map(|rates| format!("{:.2}", rates[1] / rates[0])).collect();
        println!(
            "{} against {} in each round: {} (median {:.2}x)",
            settings[1],
            settings[0],
            round_ratios.join(", "),
            median(rounds_rates.iter().map(|rates| rates[1] / rates[0]).collect())
        );
        println!("best of {rounds}, against 1 instance:");
        for (setting, instances) in ran.iter().enumerate() {
            println!("{label:<22} {instances:>9} {:>12.0} {:>11.2}x", best[setting], best[setting] / best[0]);
        }
        verdicts.push((label, best[1] / best[0]));
    }
    println!();
    for (label, ratio) in verdicts {
        match label.starts_with("python") {
            true => verdict("python, 2 instances against 1", ratio, 1.7),
            false => verdict("identity, auto against 1", ratio, 0.95),
        }
    }
}

async fn latency_bound(iggy: &IggyServer) {
    let messages = size_from_env("FERRY_BENCH_MESSAGES", 50_000);
    let Some(mongo) = MongoServer::start("scaling bench").await else { std::process::exit(2) };
    let documents: Vec<Document> = (0..messages).map(|i| document_of(&reading(i))).collect();
    let server_ms = server_time_per_batch(&mongo, &documents).await;
    drop(mongo);
    let one_way = match std::env::var("FERRY_BENCH_ONE_WAY_MS").ok().and_then(|ms| ms.parse().ok()) {
        Some(ms) => Duration::from_millis(ms),
        None => Duration::from_secs_f64((server_ms / 2000.0).max(0.050)),
    };
    println!();
    println!(
        "Latency-bound: the server takes {server_ms:.1} ms per {BATCH}-document insert; {} ms each way through the \
         proxy (a round trip of {} ms)",
        one_way.as_millis(),
        (one_way * 2).as_millis()
    );

    // A server slows as it fills (SecantusDB's oplog grows, by a third
    // over one run's 50 000 documents): every run has a fresh server, so
    // none pays for the runs before it. The raw rate is still measured
    // before and after each of Ferry's runs, for the machine's drift, and
    // each run is compared with the mean of the two around it.
    let mut raw = vec![raw_writers(&FarServer::start(one_way).await, &documents).await];
    let stream = filled_topic(iggy, messages).await;
    let (ferry, work) = (ferry_binary(), tempfile::tempdir().unwrap());
    let mut lines = Vec::new();
    for (run, (label, writes)) in
        [("Ferry, 1 write in flight", Some(1)), ("Ferry, default (4 writes)", None)].into_iter().enumerate()
    {
        let far = FarServer::start(one_way).await;
        let mut file = from_topic(iggy, &stream, &format!("latency-{run}"))
            .set("sink.mongodb.uri", far.uri.as_str())
            .set("sink.mongodb.database", "scaling")
            .set("sink.mongodb.collection", "ferry");
        if let Some(writes) = writes {
            file = file.set("sink.mongodb.max_concurrent_writes", writes);
        }
        let measured =
            until_committed(&ferry, work.path(), &format!("latency-{run}"), &file, messages, iggy.pid()).await;
        drop(far);
        raw.push(raw_writers(&FarServer::start(one_way).await, &documents).await);
        let around = (raw[run] + raw[run + 1]) / 2.0;
        lines.push((label, measured, around));
    }
    println!();
    println!("{messages} readings, no transform, into MongoDB through the delay, each run on a fresh server");
    println!("{:<28} {:>11} {:>11} {:>9} {:>22}", "writer", "messages/s", "CPU µs/msg", "RSS MiB", "vs raw around it");
    let raw_rates: Vec<String> = raw.iter().map(|rate| format!("{rate:.0}")).collect();
    println!("{RAW_WRITERS} raw insert_many writers, before, between and after: {}", raw_rates.join(", "));
    for (label, measured, around) in &lines {
        println!(
            "{label:<28} {:>11.0} {:>11.2} {:>9.1} {:>10.2}x (of {around:.0})",
            measured.rate,
            measured.cpu_us,
            measured.rss_mib,
            measured.rate / around
        );
    }
    println!();
    let (one, default) = (&lines[0], &lines[1]);
    verdict("Ferry's default against the raw writers", default.1.rate / default.2, 0.9);
    verdict("Ferry's default against one write in flight", default.1.rate / one.1.rate, 1.8);
}

/// A MongoDB server of its own behind a proxy that delays each way.
struct FarServer {
    uri: String,
    // Dropped after the proxy: nothing reaches a stopped server.
    _proxy: DelayProxy,
    _mongo: MongoServer,
}

impl FarServer {
    async fn start(one_way: Duration) -> Self {
        let Some(mongo) = MongoServer::start("scaling bench").await else { std::process::exit(2) };
        let proxy = DelayProxy::for_mongodb(mongo.uri(), Delay { one_way, jitter: Duration::ZERO });
        Self { uri: proxy.mongodb_uri(mongo.uri()), _proxy: proxy, _mongo: mongo }
    }
}

/// A reading's JSON as a document.
fn document_of(json: &[u8]) -> Document {
    let value: serde_json::Value = serde_json::from_slice(json).expect("a reading is JSON");
    mongodb::bson::serialize_to_document(&value).expect("a reading is an object")
}

/// Milliseconds MongoDB takes for one unordered insert of [`BATCH`]
/// documents, reached directly: the mean of ten.
async fn server_time_per_batch(mongo: &MongoServer, documents: &[Document]) -> f64 {
    let collection = mongo.client().await.database(&unique("probe")).collection::<Document>("probe");
    let mut total = Duration::ZERO;
    for chunk in documents.chunks(BATCH).take(10) {
        let started = Instant::now();
        collection.insert_many(chunk.to_vec()).with_options(unordered()).await.expect("MongoDB takes the insert");
        total += started.elapsed();
    }
    let _ = collection.drop().await;
    total.as_secs_f64() * 1000.0 / 10.0
}

fn unordered() -> InsertManyOptions {
    InsertManyOptions::builder().ordered(false).build()
}

/// Documents/s of [`RAW_WRITERS`] tasks each inserting its share of
/// `documents` in batches of [`BATCH`] into one collection of `far`.
async fn raw_writers(far: &FarServer, documents: &[Document]) -> f64 {
    let client = mongodb::Client::with_uri_str(&far.uri).await.expect("the proxy's URI parses");
    let database = client.database("scaling");
    let collection = database.collection::<Document>("raw");
    // The pool's connections opened before the clock starts, as Ferry's are.
    database.run_command(mongodb::bson::doc! { "ping": 1 }).await.expect("MongoDB answers");
    let batches: Vec<Vec<Document>> = documents.chunks(BATCH).map(<[Document]>::to_vec).collect();
    let shares: Vec<Vec<Vec<Document>>> =
        (0..RAW_WRITERS).map(|writer| batches.iter().skip(writer).step_by(RAW_WRITERS).cloned().collect()).collect();
    let started = Instant::now();
    let writers: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let collection = collection.clone();
            tokio::spawn(async move {
                for batch in share {
                    collection.insert_many(batch).with_options(unordered()).await.expect("MongoDB takes the insert");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer finishes");
    }
    documents.len() as f64 / started.elapsed().as_secs_f64()
}

fn verdict(what: &str, ratio: f64, target: f64) {
    let status = if ratio >= target { "meets" } else { "MISSES" };
    println!("{what}: {ratio:.2}x ({status} target ≥ {target}x)");
}
