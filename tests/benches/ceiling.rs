//! Ferry's own ceiling, with no MongoDB limit: Iggy → (nothing, identity,
//! sensor-enrich) → the blackhole sink, with the release `ferry` binary as
//! its own process; messages/s and CPU µs/message of each, next to the raw
//! rate at which the `iggy` SDK alone consumes the same topic (what
//! `iggy-bench` measures, read here with the same batch size in one
//! process).
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench ceiling
//! FERRY_BENCH_IGGY=0.9 cargo bench -p ferry-tests --bench ceiling
//! FERRY_BENCH_MESSAGES=2000000 cargo bench -p ferry-tests --bench ceiling
//! FERRY_BENCH_BATCH=5000 FERRY_BENCH_IN_FLIGHT=8 cargo bench -p ferry-tests --bench ceiling
//! ```
//!
//! It runs on iggy-server 0.8 and then 0.9 (`FERRY_BENCH_IGGY`: `0.8`, `0.9`
//! or `both`, the default), each with its own SDK for the raw rate (`iggy`
//! 0.10, 0.11), and ends with the two side by side.
//!
//! `FERRY_BENCH_BATCH` is the source's `batch_size` (1000 by default, as in
//! the other benchmarks), `FERRY_BENCH_IN_FLIGHT` `[delivery] max_in_flight`
//! (2, as one transform instance and one write have by default). Each run
//! has one transform instance: this is the cost of one; the `scaling`
//! benchmark measures several.
//!
//! Targets on the 2-core machine: ≥ 1 000 000 messages/s through identity,
//! ≥ 300 000 through sensor-enrich.

use std::time::Instant;

use ferry::iggy_link::Generation;
use ferry_tests::bench::{iggy_generations, iggy_server, size_from_env};
use ferry_tests::bench_run::{Measured, until_committed};
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{reading, unique};
use ferry_tests::process_stats::ferry_binary;
use ferry_tests::servers::IggyServer;

const BATCH: u32 = 1000;

/// What the runs through Ferry are.
const RUNS: [(&str, Option<&str>); 3] =
    [("no transform", None), ("identity", Some(guests::IDENTITY)), ("sensor-enrich", Some(guests::SENSOR_ENRICH))];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = size_from_env("FERRY_BENCH_MESSAGES", 1_000_000);
    let ferry = ferry_binary();
    let mut generations = Vec::new();
    for generation in iggy_generations("both") {
        let iggy = iggy_server("ceiling bench", generation).await;
        let stream = unique("ceiling");
        iggy.ensure_topic(&stream, "readings", 1).await;
        println!("iggy-server {generation}: producing {messages} sensor readings…");
        iggy.produce(&stream, "readings", (0..messages).map(reading)).await;

        let raw = match generation {
            Generation::V0_8 => raw_consume_0_10(&iggy, &stream, messages).await,
            Generation::V0_9 => raw_consume_0_11(&iggy, &stream, messages).await,
        };
        println!();
        println!("{:<16} {:>12} {:>14} {:>10} {:>9}", "through", "messages/s", "CPU µs/msg", "vs raw", "RSS MiB");
        println!("{:<16} {raw:>12.0} {:>14} {:>9.2}x", "iggy SDK alone", "", 1.0);
        let work = tempfile::tempdir().unwrap();
        let mut runs = Vec::new();
        for (run, (label, wasm)) in RUNS.into_iter().enumerate() {
            let measured = run_ferry(&ferry, work.path(), run, &iggy, &stream, wasm, messages).await;
            println!(
                "{label:<16} {:>12.0} {:>14.2} {:>9.2}x {:>9.1}",
                measured.rate,
                measured.cpu_us,
                measured.rate / raw,
                measured.rss_mib
            );
            runs.push(measured);
        }
        println!();
        verdict("identity", runs[1].rate, 1_000_000.0);
        verdict("sensor-enrich", runs[2].rate, 300_000.0);
        println!();
        generations.push((generation, raw, runs));
    }
    if generations.len() > 1 {
        side_by_side(&generations);
    }
}

/// Each run on every generation, and each generation's rate against the
/// first's, next to what the SDKs alone read.
fn side_by_side(generations: &[(Generation, f64, Vec<Measured>)]) {
    let (first, first_raw, first_runs) = &generations[0];
    println!("side by side ({messages} readings each)", messages = size_from_env("FERRY_BENCH_MESSAGES", 1_000_000));
    println!(
        "{:<16} {:>8} {:>12} {:>12} {:>10} {:>9}",
        "through", "iggy", "messages/s", "CPU µs/msg", "RSS MiB", "rate vs"
    );
    for (generation, raw, runs) in generations {
        println!(
            "{:<16} {generation:>8} {raw:>12.0} {:>12} {:>10} {:>8.2}x",
            "iggy SDK alone",
            "",
            "",
            raw / first_raw
        );
        for ((label, _), (run, base)) in RUNS.iter().zip(runs.iter().zip(first_runs)) {
            println!(
                "{label:<16} {generation:>8} {:>12.0} {:>12.2} {:>10.1} {:>8.2}x",
                run.rate,
                run.cpu_us,
                run.rss_mib,
                run.rate / base.rate
            );
        }
    }
    println!("(\"rate vs\": against the same row on iggy-server {first})");
}

fn verdict(what: &str, rate: f64, target: f64) {
    let status = if rate >= target { "meets" } else { "MISSES" };
    println!("{what}: {rate:.0} messages/s ({status} target ≥ {target})");
}

/// Messages/s of the `iggy` 0.10 SDK polling the whole topic on
/// iggy-server 0.8 in batches of [`BATCH`].
async fn raw_consume_0_10(iggy: &IggyServer, stream: &str, messages: usize) -> f64 {
    use iggy::prelude::{Consumer, Identifier, MessageClient, PollingStrategy};
    let client = iggy.client().await;
    let (stream, topic) = (Identifier::named(stream).unwrap(), Identifier::named("readings").unwrap());
    let consumer = Consumer::new(Identifier::named("raw").unwrap());
    let started = Instant::now();
    let (mut next, mut read) = (0, 0);
    while read < messages {
        let polled = client
            .poll_messages(&stream, &topic, Some(0), &consumer, &PollingStrategy::offset(next), BATCH, false)
            .await
            .expect("the topic can be read");
        let Some(last) = polled.messages.last() else { break };
        next = last.header.offset + 1;
        read += polled.messages.len();
    }
    assert_eq!(read, messages, "the SDK read every message");
    messages as f64 / started.elapsed().as_secs_f64()
}

/// The same with the `iggy` 0.11 SDK on iggy-server 0.9.
async fn raw_consume_0_11(iggy: &IggyServer, stream: &str, messages: usize) -> f64 {
    use iggy_0_11::prelude::{Client, Consumer, Identifier, MessageClient, PollingStrategy};
    let client = iggy.client_0_11().await;
    let (stream, topic) = (Identifier::named(stream).unwrap(), Identifier::named("readings").unwrap());
    let consumer = Consumer::new(Identifier::named("raw").unwrap());
    let started = Instant::now();
    let (mut next, mut read) = (0, 0);
    while read < messages {
        let polled = client
            .poll_messages(&stream, &topic, Some(0), &consumer, &PollingStrategy::offset(next), BATCH, false)
            .await
            .expect("the topic can be read");
        let Some(last) = polled.messages.last() else { break };
        next = last.header.offset + 1;
        read += polled.messages.len();
    }
    assert_eq!(read, messages, "the SDK read every message");
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let _ = client.shutdown().await;
    rate
}

/// Runs `ferry run` on the topic (a consumer group of its own) into the
/// blackhole until every message is committed (see [`until_committed`]).
async fn run_ferry(
    ferry: &std::path::Path,
    work: &std::path::Path,
    run: usize,
    iggy: &IggyServer,
    stream: &str,
    wasm: Option<&str>,
    messages: usize,
) -> Measured {
    let batch = size_from_env("FERRY_BENCH_BATCH", BATCH as usize);
    let in_flight = size_from_env("FERRY_BENCH_IN_FLIGHT", 2);
    let mut file = PipelineFile::named("ceiling")
        .set("source.iggy.address", iggy.address())
        .set("source.iggy.stream", stream)
        .set("source.iggy.topic", "readings")
        .set("source.iggy.consumer_group", format!("ceiling-{run}"))
        .set("source.iggy.batch_size", batch as i64)
        .set("sink.blackhole", toml::Table::new())
        .set("delivery.max_in_flight", in_flight as i64)
        .set("delivery.transform_instances", 1);
    if let Some(wasm) = wasm {
        file = file.transform("t", wasm);
    }
    until_committed(ferry, work, &format!("ceiling-{run}"), &file, messages, iggy.pid()).await
}
