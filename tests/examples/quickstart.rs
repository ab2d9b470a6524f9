//! The README's quick start: starts (or connects to) Iggy and MongoDB,
//! produces the sample sensor readings, runs `pipelines/sensors-to-mongo.toml`
//! until they have landed, and shows what landed — and what was set aside.
//!
//! ```sh
//! cargo run -p ferry-tests --example quickstart
//! ```
//!
//! Servers: `IGGY_ADDRESS` / `MONGODB_URI` if set; else a local `iggy-server`
//! and `secantusd-py` (or Docker), started on free ports for this run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry::config::PipelineConfig;
use ferry::telemetry::PipelineTelemetry;
use ferry::wasm::{CompileCache, WasmRuntime};
use ferry_tests::pipelines::{header, produce, read_topic};
use ferry_tests::servers::{IggyServer, MongoServer};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (Some(iggy), Some(mongo)) = (IggyServer::start("quickstart").await, MongoServer::start("quickstart").await)
    else {
        std::process::exit(2);
    };
    println!("Iggy at {}, MongoDB at {}", iggy.address(), mongo.uri());
    // The pipeline file reads its servers from these variables.
    // SAFETY: set before any other thread of this program reads them.
    unsafe {
        std::env::set_var("IGGY_ADDRESS", iggy.address());
        std::env::set_var("MONGODB_URI", mongo.uri());
    }

    let client = iggy.client().await;
    iggy.ensure_topic("sensors", "readings", 1).await;
    let samples = std::fs::read_to_string(root.join("pipelines/samples/readings.jsonl")).expect("the samples exist");
    let readings: Vec<Vec<u8>> = samples.lines().map(|line| line.as_bytes().to_vec()).collect();
    produce(&client, "sensors", "readings", readings.clone()).await;
    println!("produced {} readings to sensors/readings\n", readings.len());

    let config = PipelineConfig::load(&root.join("pipelines/sensors-to-mongo.toml")).unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(2)
    });
    let runtime = WasmRuntime::new(CompileCache::default_dir().map(CompileCache::new)).expect("the engine starts");
    let shutdown = CancellationToken::new();
    let telemetry = PipelineTelemetry::detached(&config.name);
    let pipeline = tokio::spawn(ferry::pipeline::run(config, Arc::new(runtime), telemetry, shutdown.clone()));

    // Every reading is accounted for once each is a document or a dead letter
    // (two of the samples are dropped by design: they carry no temperature).
    let collection = mongo.client().await.database("iot").collection::<Document>("readings");
    let expected = readings.len() - 2;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (documents, letters) = loop {
        let documents: Vec<Document> = collection.find(doc! {}).await.unwrap().try_collect().await.unwrap();
        let letters = read_topic(&client, "sensors", "readings-dlq").await;
        if documents.len() + letters.len() >= expected || tokio::time::Instant::now() > deadline {
            break (documents, letters);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shutdown.cancel();
    let counts = pipeline.await.expect("the pipeline task finishes").expect("the pipeline stops cleanly");

    println!("in MongoDB, iot.readings:");
    for document in &documents {
        println!("  {}", Bson::Document(document.clone()).into_relaxed_extjson());
    }
    println!("\nin the dead-letter topic, sensors/readings-dlq:");
    for letter in &letters {
        let reason = header(letter, "ferry-reason").unwrap_or_default();
        println!("  {} — {reason}", String::from_utf8_lossy(&letter.payload));
    }
    println!(
        "\n{} readings: {} written, {} dropped, {} dead-lettered",
        counts.records, counts.outputs, counts.dropped, counts.dead_lettered
    );
    if documents.len() + letters.len() < expected {
        eprintln!("error: not every reading arrived within a minute");
        std::process::exit(1);
    }
}
