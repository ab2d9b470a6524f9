//! What the operating layer costs a pipeline, measured where the pipeline
//! bench's noise cannot hide it: the events the stages emit for one batch,
//! timed in a loop, per record; and one scrape of `/metrics`.
//!
//! ```sh
//! cargo bench -p ferry-tests --bench telemetry
//! ```
//!
//! The per-record figure is set against the CPU a message costs Ferry end
//! to end (`FERRY_BENCH_MESSAGE_US`, 3.0 µs by default: what the pipeline
//! bench measures on the development machine).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferry::record::RecordResult;
use ferry::record::{Batch, BatchSource, Emitted, Encoding, IggyPosition, IggyTopic, MessageId, Origin, Record};
use ferry::telemetry::Telemetry;
use ferry::telemetry::events::{
    BatchCommitted, BatchPolled, BatchTransformed, BatchWritten, MongoWrites, OffsetCommitted, PartitionsAssigned,
};
use ferry_tests::pipelines::reading;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1000;
/// Each measurement runs at least this long, after a warm-up of a tenth.
const MEASURE_FOR: Duration = Duration::from_millis(2000);

fn main() {
    let message_us: f64 = std::env::var("FERRY_BENCH_MESSAGE_US").ok().and_then(|us| us.parse().ok()).unwrap_or(3.0);
    let telemetry = Telemetry::new();
    let pipeline = telemetry.pipeline("bench");
    let transform = pipeline.transform("enrich");
    PartitionsAssigned { partitions: &[0] }.emit(&pipeline);
    let (batch, results) = sensor_batch();
    let bytes = batch.records.iter().map(|record| record.payload.len() as u64).sum();
    let mut offset = 0;
    // One batch's events, as the stages of an Iggy → MongoDB pipeline emit
    // them: polled, one transform call, transformed, the sink's writes,
    // written, committed.
    let per_batch = measure(|| {
        BatchPolled { records: BATCH, bytes, elapsed: Duration::from_micros(800), in_flight: 1 }.emit(&pipeline);
        transform.called(Duration::from_micros(900));
        BatchTransformed { elapsed: Duration::from_micros(1100) }.emit(&pipeline);
        let mut writes = MongoWrites::default();
        writes.commands.push(Duration::from_millis(40));
        writes.documents.insert(("readings".to_owned(), "insert"), BATCH as u64);
        writes.emit(&pipeline);
        BatchWritten { batch: &batch, results: &results, letters: &[], elapsed: Duration::from_millis(41) }
            .emit(&pipeline);
        offset += BATCH as u64;
        OffsetCommitted { partition: 0, offset }.emit(&pipeline);
        BatchCommitted { elapsed: Duration::from_micros(300), in_flight: 0 }.emit(&pipeline);
    });
    let per_record = per_batch.as_nanos() as f64 / BATCH as f64;
    println!("events of one batch of {BATCH} records   {:>9.2} µs", per_batch.as_nanos() as f64 / 1000.0);
    println!("per record                         {per_record:>9.2} ns");
    println!(
        "share of a message's CPU           {:>9.3} %   (of {message_us} µs/message, the pipeline bench's steady state)",
        100.0 * per_record / (message_us * 1000.0)
    );

    // A scrape: ten pipelines' series, each with a transform and four
    // partitions, written as text.
    for n in 0..10 {
        let other = telemetry.pipeline(&format!("pipeline-{n}"));
        let _ = other.transform("enrich");
        for partition in 0..4 {
            let _ = other.partition(partition);
        }
    }
    let scrape = measure(|| {
        black_box(telemetry.encode_metrics());
    });
    let size = telemetry.encode_metrics().len();
    println!(
        "one /metrics scrape, 11 pipelines  {:>9.2} µs   ({size} bytes; once per scrape interval, off the data path)",
        scrape.as_nanos() as f64 / 1000.0
    );
}

/// A batch of sensor readings from an Iggy partition, each transformed into
/// one output of about its own size.
fn sensor_batch() -> (Batch, Vec<RecordResult>) {
    let records: Vec<Record> = (0..BATCH)
        .map(|i| Record {
            payload: reading(i),
            encoding: Encoding::Json,
            key: None,
            headers: None,
            timestamp: 0,
            origin: Origin::Iggy(IggyPosition {
                partition: 0,
                offset: i as u64,
                message_id: MessageId { high: 0, low: i as u64 },
                timestamp: 0,
            }),
        })
        .collect();
    let results = records
        .iter()
        .map(|record| {
            RecordResult::Emitted(vec![Emitted {
                payload: record.payload.clone(),
                encoding: Encoding::Json,
                key: None,
                headers: Vec::new(),
                collection: Some("readings".to_owned()),
                write: None,
            }])
        })
        .collect();
    let source = BatchSource::Iggy(IggyTopic { stream: "sensors".into(), topic: "readings".into() });
    (Batch { source, records }, results)
}

/// The mean time of one call of `work`, over at least [`MEASURE_FOR`].
fn measure(mut work: impl FnMut()) -> Duration {
    let warm_up = Instant::now();
    while warm_up.elapsed() < MEASURE_FOR / 10 {
        work();
    }
    let (started, mut calls) = (Instant::now(), 0u32);
    while started.elapsed() < MEASURE_FOR {
        work();
        calls += 1;
    }
    started.elapsed() / calls
}
