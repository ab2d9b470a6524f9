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
//! (2, Ferry's default).
//!
//! Targets on the 2-core machine: ≥ 1 000 000 messages/s through identity,
//! ≥ 300 000 through sensor-enrich.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::iggy_link::Generation;
use ferry_tests::bench::{iggy_generations, iggy_server, size_from_env};
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{reading, unique};
use ferry_tests::process_stats::{cpu_time, ferry_binary, rss_bytes, stop};
use ferry_tests::servers::IggyServer;

const BATCH: u32 = 1000;

/// What the runs through Ferry are.
const RUNS: [(&str, Option<&str>); 3] =
    [("no transform", None), ("identity", Some(guests::IDENTITY)), ("sensor-enrich", Some(guests::SENSOR_ENRICH))];

/// One run through Ferry: steady messages/s, CPU µs per message, RSS at the end.
struct Measured {
    rate: f64,
    cpu_us: f64,
    rss_mib: f64,
}

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
/// blackhole until every message is committed: messages/s from the first
/// commit seen to the last (start-up aside; both rates are printed), and
/// CPU µs per message of the whole process.
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
        .set("delivery.max_in_flight", in_flight as i64);
    if let Some(wasm) = wasm {
        file = file.transform("t", wasm);
    }
    let pipeline = work.join(format!("ceiling-{run}.toml"));
    std::fs::write(&pipeline, file.text()).unwrap();
    let admin = format!("127.0.0.1:{}", ferry_tests::servers::free_port());
    let command = |verb: &str| {
        let mut command = Command::new(ferry);
        command.arg(verb).arg(&pipeline).env("FERRY_CACHE_DIR", work.join("cache")).env("FERRY_LOG", "warn");
        command
    };
    assert!(command("validate").stdout(Stdio::null()).status().unwrap().success());
    let started = Instant::now();
    let mut process = command("run").args(["--admin", &admin]).stdout(Stdio::null()).spawn().expect("ferry starts");
    let pid = process.id();
    let http = reqwest::Client::new();
    let last = (messages - 1) as f64;
    let mut first: Option<(Instant, f64)> = None;
    let (finished, metrics) = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let metrics = match http.get(format!("http://{admin}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => continue,
        };
        let committed = ferry_tests::ferry::sample(&metrics, "ferry_iggy_committed_offset");
        if let (None, Some(offset)) = (first, committed) {
            first = Some((Instant::now(), offset));
        }
        if committed.is_some_and(|offset| offset >= last) {
            break (Instant::now(), metrics);
        }
        assert!(process.try_wait().unwrap().is_none(), "ferry exited early");
    };
    let (elapsed, cpu, rss) = (started.elapsed(), cpu_time(pid), rss_bytes(pid));
    stop(&mut process);
    let (first_at, first_offset) = first.expect("seen before the last");
    let steady = (last - first_offset) / (finished - first_at).as_secs_f64();
    // Where a batch's time goes, from Ferry's own metrics.
    let sample = |series: &str| ferry_tests::ferry::sample(&metrics, series).unwrap_or(f64::NAN);
    let mean_ms = |stage: &str| {
        let sum = sample(&format!(r#"ferry_stage_duration_seconds_sum{{stage="{stage}"}}"#));
        1000.0 * sum / sample(&format!(r#"ferry_stage_duration_seconds_count{{stage="{stage}"}}"#))
    };
    println!(
        "    (from process start: {:.0} messages/s; first commit after {} ms; {:.0} records a batch; \
         mean poll {:.2} ms, transform {:.2} ms, commit {:.2} ms)",
        messages as f64 / elapsed.as_secs_f64(),
        (first_at - started).as_millis(),
        sample("ferry_records_read_total") / sample("ferry_batches_total"),
        mean_ms("poll"),
        mean_ms("transform"),
        mean_ms("commit"),
    );
    Measured { rate: steady, cpu_us: cpu.as_secs_f64() * 1e6 / messages as f64, rss_mib: rss as f64 / 1048576.0 }
}
