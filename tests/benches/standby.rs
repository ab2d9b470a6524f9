//! How long a change-stream pipeline with a standby is held up when its
//! leader goes: killed (`kill -9`), and stopped as a rolling update does
//! (SIGTERM). Two release `ferry` processes run one pipeline while changes
//! flow (an insert every 5 ms); each round takes the leader away and times
//! from the signal to the first message the new leader produces, then
//! starts a new standby.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench standby
//! FERRY_BENCH_LEASE=2s FERRY_BENCH_ROUNDS=5 cargo bench -p ferry-tests --bench standby
//! ```
//!
//! Targets at the default 10 s lease: after a kill, ≤ 2 × the lease (20 s);
//! after SIGTERM, ≤ 3 s. `FERRY_BENCH_IGGY` picks the Iggy generation.

use std::time::{Duration, Instant};

use ferry_tests::bench::{iggy_generations, iggy_server, size_from_env};
use ferry_tests::ferry_process::{FerryProcess, sole_leader};
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::unique;
use ferry_tests::process_stats::ferry_binary;
use ferry_tests::servers::MongoServer;
use mongodb::bson::doc;

const PIPELINE: &str = "standby-bench";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The processes run the release binary.
    // SAFETY: set before any thread of this bench reads the environment.
    unsafe { std::env::set_var("FERRY_BIN", ferry_binary()) };
    let lease = std::env::var("FERRY_BENCH_LEASE").unwrap_or_else(|_| "10s".to_owned());
    let lease_time = humantime::parse_duration(&lease).expect("FERRY_BENCH_LEASE is a duration");
    let rounds = size_from_env("FERRY_BENCH_ROUNDS", 3);
    let generation = *iggy_generations("0.8").first().expect("one generation");
    let iggy = iggy_server("standby bench", generation).await;
    let Some(mongo) = MongoServer::start("standby bench").await else { std::process::exit(2) };
    let (database, stream) = (unique("standby"), unique("standby"));
    let work = tempfile::tempdir().unwrap();
    let file = PipelineFile::changes_to_iggy(PIPELINE, &mongo, Some(&database), &iggy, &stream, "changes")
        .set("source.mongodb.collection", "events")
        .set("source.mongodb.standby.lease", lease.as_str())
        .set("sink.iggy.create.partitions", 3)
        .write(work.path());
    println!("iggy-server {generation}, lease {lease}, {rounds} rounds of each; an insert every 5 ms");

    let events = mongo.client().await.database(&database).collection("events");
    let writer = tokio::spawn(async move {
        for n in 0u64.. {
            let _ = events.insert_one(doc! { "n": n as i64 }).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut started = 0;
    let mut start = || {
        started += 1;
        FerryProcess::start(&file, &work.path().join(format!("ferry-{started}.log")))
    };
    let mut processes = vec![start(), start()];
    leader(&processes).await;

    let mut kills = Vec::new();
    let mut stops = Vec::new();
    for round in 0..rounds * 2 {
        let killing = round < rounds;
        let leading = leader(&processes).await;
        standing_by(&processes, 1 - leading).await;
        // Let the leader settle into producing first.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let signalled = Instant::now();
        let gone = processes.remove(leading);
        match killing {
            true => gone.kill(),
            false => assert!(gone.terminate(), "SIGTERM stops the leader cleanly"),
        }
        // What a killed leader sent last may still be landing: count from
        // what the topic holds a moment later (no standby can take its lease
        // that soon). A stopped one has exited, its last batch written.
        if killing {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let baseline = iggy.messages_in(&stream, "changes").await;
        while iggy.messages_in(&stream, "changes").await <= baseline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = signalled.elapsed();
        println!(
            "{:<8} round {}: first message from the new leader after {took:.2?}",
            kind(killing),
            round % rounds + 1
        );
        match killing {
            true => kills.push(took),
            false => stops.push(took),
        }
        processes.push(start());
    }
    writer.abort();
    println!();
    verdict("kill -9", &kills, lease_time * 2);
    verdict("SIGTERM", &stops, Duration::from_secs(3));
}

fn kind(killing: bool) -> &'static str {
    if killing { "kill -9" } else { "SIGTERM" }
}

fn verdict(what: &str, times: &[Duration], target: Duration) {
    let worst = times.iter().max().copied().unwrap_or_default();
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    let met = if worst <= target { "met" } else { "MISSED" };
    println!("{what:<8} takeover: mean {mean:.2?}, worst {worst:.2?} (target ≤ {target:?}: {met})");
}

/// Which process leads, once exactly one says so.
async fn leader(processes: &[FerryProcess]) -> usize {
    loop {
        if let Some(only) = sole_leader(processes, PIPELINE).await {
            return only;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn standing_by(processes: &[FerryProcess], index: usize) {
    while processes[index].role(PIPELINE).await.as_deref() != Some("standby") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
