//! How fast changes reach Iggy: the raw change-stream read rate of the
//! MongoDB server with the Rust driver (N documents inserted while watching),
//! and, in the same run, Ferry's rate from change to Iggy message.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench change_stream
//! FERRY_BENCH_EVENTS=200000 cargo bench -p ferry-tests --bench change_stream
//! FERRY_BENCH_FORMAT=bson cargo bench -p ferry-tests --bench change_stream
//! FERRY_BENCH_IGGY=0.9 cargo bench -p ferry-tests --bench change_stream
//! FERRY_BENCH_STANDBY=1 cargo bench -p ferry-tests --bench change_stream
//! ```
//!
//! With `FERRY_BENCH_STANDBY=1` the pipeline has `standby` set (one process,
//! so it leads): its Iggy traffic then passes the fencing relay, and the
//! run shows what that costs.
//!
//! Events reach Iggy as relaxed Extended JSON, the default; with
//! `FERRY_BENCH_FORMAT=bson` the pipeline sets `format = "bson"`, which
//! shows what writing the JSON costs.
//!
//! Both runs insert the same documents the same way (batches of 1000) into
//! their own collection while something watches; each rate counts from the
//! first insert to the last event seen. The raw reader's clock starts once
//! its stream is open, Ferry's once a first change has come through it. The
//! raw rate is measured before and after Ferry's run and averaged, because a
//! server slows as it fills up and whichever runs first would be flattered.
//! Ferry runs as its own process, so its CPU time comes from /proc alone; the
//! raw reader's CPU per event, read on a thread of its own, shows how much of
//! Ferry's is the driver's share.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::bench::{servers, size_from_env};
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::unique;
use ferry_tests::process_stats::{cpu_time, ferry_binary, rss_bytes, stop, thread_cpu_time};
use futures::StreamExt;
use mongodb::bson::{Document, doc};

const BATCH: usize = 1000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = size_from_env("FERRY_BENCH_EVENTS", 50_000);
    let format = std::env::var("FERRY_BENCH_FORMAT").unwrap_or_else(|_| "json".to_owned());
    assert!(["json", "bson"].contains(&format.as_str()), "FERRY_BENCH_FORMAT is json or bson, not {format:?}");
    let ferry = ferry_binary();
    let (iggy, mongo) = servers("change stream bench").await;
    let database = mongo.client().await.database(&unique("bench"));

    let raw_before = raw_rate(mongo.uri(), database.collection("raw_before"), events).await;

    // Ferry: the same through a change-stream pipeline to Iggy.
    let stream = unique("bench");
    let work = tempfile::tempdir().unwrap();
    let pipeline = work.path().join("changes.toml");
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(1));
    let file = PipelineFile::changes_to_iggy("bench-changes", &mongo, Some(database.name()), &iggy, &stream, "changes")
        .set("source.mongodb.collection", "piped")
        .set("source.mongodb.start", format!("timestamp:{now}"))
        .set("source.mongodb.batch_size", BATCH as i64)
        .set("source.mongodb.format", format.as_str())
        .set("sink.iggy.create.partitions", 4);
    let standby = std::env::var("FERRY_BENCH_STANDBY").is_ok_and(|value| value == "1");
    let file = match standby {
        true => file.set("source.mongodb.standby.lease", "10s"),
        false => file,
    };
    std::fs::write(&pipeline, file.text()).unwrap();
    let mut process = Command::new(&ferry)
        .arg("run")
        .arg(&pipeline)
        .env("FERRY_CACHE_DIR", work.path().join("cache"))
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("ferry starts");
    let pid = process.id();
    // Ferry's own Iggy link reads the topic, so the bench runs on either
    // server generation (`FERRY_BENCH_IGGY`).
    let session = iggy.session().await;
    let topic = async || session.topic(&stream, "changes").await.expect("the topic can be read");
    let messages = async || topic().await.map_or(0, |topic| topic.messages());
    while topic().await.is_none_or(|topic| topic.partitions.is_empty()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The clock starts once a first change has come through, as the raw
    // reader's starts once its stream is open: opening a stream at a time
    // can take seconds (SecantusDB scans its oplog for the time), and that is
    // not the rate of reading.
    let piped = database.collection::<Document>("piped");
    piped.insert_one(doc! { "warm_up": true }).await.expect("the warm-up document inserts");
    while messages().await == 0 {
        assert!(process.try_wait().unwrap().is_none(), "ferry exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (cpu_before, started) = (cpu_time(pid), Instant::now());
    let inserting = tokio::spawn(async move {
        insert(piped, events).await;
        started.elapsed()
    });
    let mut peak_rss = 0;
    loop {
        // Asking Iggy costs MongoDB nothing, so it is asked often: the clock
        // stops within 20 ms of the last message, as the raw reader's stops
        // at its last event.
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak_rss = peak_rss.max(rss_bytes(pid));
        if messages().await > events as u64 {
            break;
        }
        assert!(process.try_wait().unwrap().is_none(), "ferry exited early");
    }
    let ferry_rate = events as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu_time(pid) - cpu_before;
    let inserted_in = inserting.await.unwrap();
    stop(&mut process);
    session.shutdown().await;
    let raw_after = raw_rate(mongo.uri(), database.collection("raw_after"), events).await;
    let raw_rate = (raw_before.rate + raw_after.rate) / 2.0;
    let raw_cpu = (raw_before.cpu + raw_after.cpu).as_secs_f64() * 1e6 / (2 * events) as f64;

    println!();
    let standing_by = if standby { ", standby on: through the fencing relay" } else { "" };
    println!("events                  {events} (payloads as {format}{standing_by})");
    println!(
        "raw change stream       {raw_rate:>9.0} events/s   (mean of {:.0} before and {:.0} after; \
         Rust driver, inserting in batches of {BATCH} while watching)",
        raw_before.rate, raw_after.rate
    );
    println!(
        "raw reader CPU          {raw_cpu:>9.2} µs/event   (the driver alone, reading server batches in place on a thread of its own)"
    );
    println!(
        "ferry, change to Iggy   {ferry_rate:>9.0} events/s   ({:.1}% of the raw rate)",
        100.0 * ferry_rate / raw_rate
    );
    println!(
        "inserts while ferry ran {:>9.0} events/s   (the last event reached Iggy {:.1} s after the last insert)",
        events as f64 / inserted_in.as_secs_f64(),
        events as f64 / ferry_rate - inserted_in.as_secs_f64()
    );
    println!("ferry CPU               {:>9.2} µs/event", cpu.as_secs_f64() * 1e6 / events as f64);
    println!("ferry RSS peak          {:>9.1} MiB", peak_rss as f64 / (1024.0 * 1024.0));
}

/// How fast the driver alone reads a change stream.
struct RawRead {
    /// Events per second.
    rate: f64,
    /// The reading thread's CPU time.
    cpu: Duration,
}

/// The driver alone reading a change stream on `collection` while `events`
/// documents are inserted into it. The reader runs on a thread of its own
/// with its own client, so that thread's CPU time is the driver's whole cost
/// of reading (its background tasks included). It reads as Ferry does: the
/// same `$changeStream` aggregate, a server batch at a time, each event
/// visited in place; so the two CPU figures compare.
async fn raw_rate(uri: &str, collection: mongodb::Collection<Document>, events: usize) -> RawRead {
    let (uri, database, name) = (uri.to_owned(), collection.namespace().db, collection.name().to_owned());
    let (watching, ready) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let client = mongodb::Client::with_uri_str(&uri).await.expect("the reader connects");
            let collection = client.database(&database).collection::<Document>(&name);
            let mut stream = collection
                .aggregate([doc! { "$changeStream": {} }])
                .batch_size(BATCH as u32)
                .max_await_time(Duration::from_millis(500))
                .batch()
                .await
                .expect("a change stream opens");
            let (cpu_before, started) = (thread_cpu_time(), Instant::now());
            watching.send(()).unwrap();
            let mut seen = 0;
            while seen < events {
                let batch = stream.next().await.expect("the stream goes on").expect("a batch");
                for event in batch.doc_slices().expect("a batch of events") {
                    let event = event.expect("an event");
                    assert!(event.as_document().is_some_and(|event| event.get("_id").is_ok()), "an event with a token");
                    seen += 1;
                }
            }
            RawRead { rate: events as f64 / started.elapsed().as_secs_f64(), cpu: thread_cpu_time() - cpu_before }
        })
    });
    ready.await.expect("the reader starts watching");
    let inserting = tokio::spawn(insert(collection, events));
    let read = tokio::task::spawn_blocking(move || reader.join().expect("the reader finishes")).await.unwrap();
    inserting.await.unwrap();
    read
}

async fn insert(collection: mongodb::Collection<Document>, events: usize) {
    let documents: Vec<Document> = (0..events)
        .map(|i| doc! { "sensor_id": format!("s{}", i % 50), "temp": (i % 40) as f64 + 0.5, "seq": i as i64 })
        .collect();
    for chunk in documents.chunks(BATCH) {
        collection.insert_many(chunk).await.expect("documents insert");
    }
}
