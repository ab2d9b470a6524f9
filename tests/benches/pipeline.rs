//! End-to-end speed of an Iggy → sensor-enrich → MongoDB pipeline, next to
//! the raw `insert_many` ceiling of the same MongoDB server, in one run.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench pipeline
//! FERRY_BENCH_MESSAGES=1000000 cargo bench -p ferry-tests --bench pipeline
//! FERRY_BENCH_ROUNDS=3 cargo bench -p ferry-tests --bench pipeline
//! FERRY_BENCH_IGGY=0.9 cargo bench -p ferry-tests --bench pipeline
//! ```
//!
//! Each round runs Ferry twice, each run on a topic of its own: with the
//! admin endpoint off, then with it on and `/metrics` scraped every second;
//! the last line is what the metrics cost in CPU per message.
//! `FERRY_BENCH_BASELINE=path/to/ferry` adds a run of another build (say
//! the previous release) to each round, to compare with;
//! `FERRY_BENCH_WRITES` sets `[sink.mongodb] max_concurrent_writes`.
//!
//! Servers come from the test fixtures (iggy-server and secantusd-py, or
//! IGGY_ADDRESS / MONGODB_URI). Every message is produced before the clock
//! starts. Ferry runs as its own process (`target/release/ferry`, or
//! `FERRY_BIN`), so its CPU time and memory are read from /proc alone. The
//! ceiling is measured before and after Ferry's run and averaged, because a
//! server slows as it fills up and whichever runs first would be flattered.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_tests::bench::{servers, size_from_env};
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{reading, unique};
use ferry_tests::process_stats::{cpu_time, ferry_binary, rss_bytes, stop};
use ferry_tests::servers::{IggyServer, MongoServer};
use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, WriteConcern};
use sensor_enrich::{Enriched, enrich};

const BATCH: usize = 1000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = size_from_env("FERRY_BENCH_MESSAGES", 200_000);
    let rounds = size_from_env("FERRY_BENCH_ROUNDS", 1);
    let ferry = ferry_binary();
    let (iggy, mongo) = servers("pipeline bench").await;
    let (stream, database) = (unique("bench"), unique("bench"));
    println!("iggy-server {}", iggy.generation());
    // Each run reads a topic of its own, all produced before any clock starts.
    let baseline = std::env::var_os("FERRY_BENCH_BASELINE").map(std::path::PathBuf::from);
    // `FERRY_BENCH_UNREAD=1` adds a run with the endpoint on and never read.
    let unread = std::env::var_os("FERRY_BENCH_UNREAD").is_some();
    let runs: Vec<Admin> = (0..rounds)
        .flat_map(|_| {
            [Admin::Off, Admin::Scraped]
                .into_iter()
                .chain(unread.then_some(Admin::Unread))
                .chain(baseline.is_some().then_some(Admin::Baseline))
        })
        .collect();
    println!("producing {messages} sensor readings for each of {} runs…", runs.len());
    for run in 0..runs.len() {
        let topic = format!("readings-{run}");
        iggy.ensure_topic(&stream, &topic, 1).await;
        iggy.produce(&stream, &topic, (0..messages).map(reading)).await;
    }

    let ceiling_before = insert_many_ceiling(&mongo, &database, "ceiling_before", messages).await;
    let work = tempfile::tempdir().unwrap();
    let bench = Bench { ferry, baseline, stream, database: database.clone(), messages, work: work.path().to_owned() };
    let mut results = Vec::new();
    for (run, admin) in runs.iter().enumerate() {
        results.push((*admin, bench.run(run, *admin, &iggy, &mongo).await));
    }
    let ceiling_after = insert_many_ceiling(&mongo, &database, "ceiling_after", messages).await;
    let ceiling = (ceiling_before + ceiling_after) / 2.0;

    println!();
    println!("messages                {messages} per run");
    println!(
        "insert_many ceiling     {ceiling:>9.0} docs/s   (mean of {ceiling_before:.0} before and {ceiling_after:.0} after; \
         Rust driver, batches of {BATCH}, same documents and write concern)"
    );
    for (admin, result) in &results {
        result.print(*admin, messages, ceiling);
    }
    let steady = |wanted: Admin| {
        let cpu: Vec<f64> =
            results.iter().filter(|(admin, _)| *admin == wanted).map(|(_, r)| r.steady_cpu(messages)).collect();
        cpu.iter().sum::<f64>() / cpu.len() as f64
    };
    let (off, on) = (steady(Admin::Off), steady(Admin::Scraped));
    if results.iter().any(|(admin, _)| *admin == Admin::Baseline) {
        let baseline = steady(Admin::Baseline);
        println!(
            "against the baseline    {:>+8.1}%   of CPU per message ({off:.2} µs with the admin endpoint off, {baseline:.2} µs \
             for the baseline binary; steady state, mean of {rounds} run(s) each)",
            100.0 * (off - baseline) / baseline
        );
    }
    println!(
        "metrics cost            {:>+8.1}%   of CPU per message ({on:.2} µs with /metrics scraped every second, \
         {off:.2} µs with the admin endpoint off; steady state, mean of {rounds} run(s) each)",
        100.0 * (on - off) / off
    );
}

/// Whether a run has the admin endpoint, and a scraper reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admin {
    Off,
    /// On, with `/metrics` read every second (Prometheus scrapes every 15 s
    /// by default).
    Scraped,
    /// On, and never read.
    Unread,
    /// Another `ferry` binary (`FERRY_BENCH_BASELINE`, say an earlier
    /// release), run without admin options, to compare with.
    Baseline,
}

struct Bench {
    ferry: std::path::PathBuf,
    baseline: Option<std::path::PathBuf>,
    stream: String,
    database: String,
    messages: usize,
    work: std::path::PathBuf,
}

/// What one run of the release binary measured.
struct RunResult {
    elapsed: Duration,
    start_up: Duration,
    cpu: Duration,
    start_up_cpu: Duration,
    warm_rss: u64,
    end_rss: u64,
    peak_rss: u64,
    scrapes: usize,
}

impl Bench {
    /// Runs `ferry run` over topic `readings-{run}` until its last document
    /// is in database `{database}-{run}` (sensor-enrich chooses the
    /// collection: `readings`).
    async fn run(&self, run: usize, admin: Admin, iggy: &IggyServer, mongo: &MongoServer) -> RunResult {
        let (stream, messages) = (&self.stream, self.messages);
        let (topic, database) = (format!("readings-{run}"), format!("{}-{run}", self.database));
        let pipeline = self.work.join(format!("bench-{run}.toml"));
        let mut file = PipelineFile::iggy_to_mongo("bench", iggy, stream, &topic, mongo, &database, "readings")
            .set("source.iggy.batch_size", BATCH as i64)
            .transform("enrich", guests::SENSOR_ENRICH);
        if let Ok(writes) = std::env::var("FERRY_BENCH_WRITES") {
            let writes: i64 = writes.parse().expect("FERRY_BENCH_WRITES is a number of writes");
            file = file.set("sink.mongodb.max_concurrent_writes", writes);
        }
        std::fs::write(&pipeline, file.text()).unwrap();
        let admin_address = format!("127.0.0.1:{}", ferry_tests::servers::free_port());
        let binary = match admin {
            Admin::Baseline => self.baseline.as_ref().expect("a baseline run has a baseline binary"),
            _ => &self.ferry,
        };
        let ferry_command = |command: &str| {
            let mut ferry = Command::new(binary);
            ferry.arg(command).arg(&pipeline).env("FERRY_CACHE_DIR", self.work.join("cache")).env("FERRY_LOG", "warn");
            match (command, admin) {
                ("run", Admin::Off) => drop(ferry.args(["--admin", "off"])),
                ("run", Admin::Scraped | Admin::Unread) => drop(ferry.args(["--admin", admin_address.as_str()])),
                _ => {}
            }
            ferry
        };
        // Compile the transform into the cache first, as a deployment would.
        assert!(ferry_command("validate").stdout(Stdio::null()).status().unwrap().success());

        let documents = mongo.client().await.database(&database).collection::<Document>("readings");
        let (first_id, last_id) = (format!("{stream}:{topic}:0:0"), format!("{stream}:{topic}:0:{}", messages - 1));
        let scrapes = Arc::new(AtomicUsize::new(0));
        let scraper = (admin == Admin::Scraped)
            .then(|| tokio::spawn(scrape_every_second(admin_address.clone(), scrapes.clone())));
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
        let (cpu, end_rss) = (cpu_time(pid), rss_bytes(pid));
        if let Some(scraper) = scraper {
            scraper.abort();
        }
        stop(&mut process);
        RunResult {
            elapsed,
            start_up: first_batch_at.expect("set before the loop ends"),
            cpu,
            start_up_cpu,
            warm_rss: warm_rss.unwrap_or(end_rss),
            end_rss,
            peak_rss,
            scrapes: scrapes.load(Ordering::Relaxed),
        }
    }
}

/// Reads `/metrics` once a second, as a (keen) Prometheus would, counting
/// the answers that held metrics.
async fn scrape_every_second(address: String, scrapes: Arc<AtomicUsize>) {
    let http = reqwest::Client::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(response) = http.get(format!("http://{address}/metrics")).send().await
            && response.text().await.is_ok_and(|text| text.contains("ferry_records_read_total"))
        {
            scrapes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RunResult {
    /// CPU per message after the first batch landed.
    fn steady_cpu(&self, messages: usize) -> f64 {
        (self.cpu - self.start_up_cpu).as_secs_f64() * 1e6 / (messages - BATCH) as f64
    }

    fn print(&self, admin: Admin, messages: usize, ceiling: f64) {
        let rate = messages as f64 / self.elapsed.as_secs_f64();
        // After the first batch has landed, the rest arrive at this rate.
        let steady_rate = (messages - BATCH) as f64 / (self.elapsed - self.start_up).as_secs_f64();
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let admin = match admin {
            Admin::Off => "admin endpoint off".to_owned(),
            Admin::Scraped => format!("/metrics scraped every second ({} scrapes)", self.scrapes),
            Admin::Unread => "the admin endpoint on, never read".to_owned(),
            Admin::Baseline => "the baseline binary".to_owned(),
        };
        println!("--- run with {admin}");
        println!(
            "ferry end to end        {rate:>9.0} docs/s   ({:.1}% of the ceiling; from process start to the last document)",
            100.0 * rate / ceiling
        );
        println!(
            "ferry steady state      {steady_rate:>9.0} docs/s   ({:.1}% of the ceiling; after the first batch, {} ms from process start)",
            100.0 * steady_rate / ceiling,
            self.start_up.as_millis()
        );
        println!(
            "ferry CPU               {:>9.2} µs/message (whole process, start-up included)",
            self.cpu.as_secs_f64() * 1e6 / messages as f64
        );
        println!(
            "ferry CPU, steady state {:>9.2} µs/message (after the first batch; start-up took {} ms of CPU)",
            self.steady_cpu(messages),
            self.start_up_cpu.as_millis()
        );
        println!(
            "ferry RSS               {:>9.1} MiB after 2 s, {:.1} MiB at the end, {:.1} MiB peak",
            mib(self.warm_rss),
            mib(self.end_rss),
            mib(self.peak_rss)
        );
    }
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
