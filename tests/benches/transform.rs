//! How fast transforms run: ns/record and records/s for `identity` and
//! `sensor-enrich` as WebAssembly components at batch sizes 1, 100 and 1000,
//! next to the same logic compiled natively.
//!
//! Run with `cargo bench -p ferry-tests --bench transform`. Targets:
//! identity ≤ 300 ns/record; sensor-enrich within 1.5× of native at 1000.
//! `FERRY_BENCH_BASELINE_DIR=dir` also measures the same components of
//! another build (by file name) side by side. Then sensor-enrich in each
//! language (`-- languages` runs only those): the Python and JavaScript
//! examples, built with their toolchains when installed, next to Rust.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytesize::ByteSize;
use ferry::config::TransformConfig;
use ferry::record::RecordResult;
use ferry::record::{Batch, BatchSource, Encoding, IggyPosition, IggyTopic, MessageId, Origin, Record};
use ferry::wasm::{TransformChain, WasmRuntime};
use ferry_tests::guests;
use ferry_tests::toolchains::{self, Toolchain};
use sensor_enrich::{Enriched, enrich};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH_SIZES: [usize; 3] = [1, 100, 1000];
/// Each measurement runs at least this long, after a warm-up of a tenth.
const MEASURE_FOR: Duration = Duration::from_millis(1500);

fn main() {
    // `cargo bench -p ferry-tests --bench transform -- identity` runs one transform.
    let filter: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let runtime = WasmRuntime::new(None).expect("the engine starts");
    println!("call:  one Transform::transform (the host/guest boundary and the guest's work)");
    println!("chain: TransformChain::run (adds lineage tracking and routing, what pipelines run)");
    println!(
        "{:<14} {:>6} {:>13} {:>14} {:>14} {:>15} {:>13}",
        "transform", "batch", "call ns/rec", "chain ns/rec", "chain rec/s", "native ns/rec", "chain/native"
    );
    let only_languages = filter.iter().any(|wanted| wanted == "languages");
    let mut identity_call_1000 = 0.0;
    let mut enrich_ratio_1000 = 0.0;
    for (name, wasm) in [("identity", guests::IDENTITY), ("sensor-enrich", guests::SENSOR_ENRICH)] {
        if only_languages || (!filter.is_empty() && !filter.iter().any(|wanted| name.contains(wanted.as_str()))) {
            continue;
        }
        let config = TransformConfig::new(name, wasm);
        let mut bare = runtime.load(&config).expect("the guest loads");
        let mut chain = TransformChain::new(vec![runtime.load(&config).expect("the guest loads")]);
        chain.start().expect("the guest starts");
        for size in BATCH_SIZES {
            let batch = readings(size);
            let call_ns = per_record(size, || {
                black_box(bare.transform(&batch).expect("the batch runs"));
            });
            let chain_ns = per_record(size, || {
                black_box(chain.run(&batch).expect("the batch runs"));
            });
            let native_ns = per_record(size, || match name {
                "identity" => {
                    black_box(native_identity(&batch));
                }
                _ => {
                    black_box(native_enrich(&batch));
                }
            });
            let ratio = chain_ns / native_ns;
            println!(
                "{name:<14} {size:>6} {call_ns:>13.0} {chain_ns:>14.0} {:>14.0} {native_ns:>15.0} {ratio:>12.2}x",
                1e9 / chain_ns
            );
            if size == 1000 {
                match name {
                    "identity" => identity_call_1000 = call_ns,
                    _ => enrich_ratio_1000 = ratio,
                }
            }
        }
    }
    if !only_languages {
        println!();
        verdict("identity call ns/record at batch 1000", identity_call_1000, 300.0);
        verdict("sensor-enrich chain/native at batch 1000", enrich_ratio_1000, 1.5);
        if let Some(baseline) = std::env::var_os("FERRY_BENCH_BASELINE_DIR") {
            against_baseline(&runtime, std::path::Path::new(&baseline), &filter);
        }
    }
    if filter.is_empty() || only_languages {
        languages(&runtime);
    }
}

/// sensor-enrich as each language's example builds it, at the memory limit
/// its README gives, measured in one run: µs/record of the call, and the
/// ratio to Rust's. Recycles show what the guest runtime's memory costs.
fn languages(runtime: &WasmRuntime) {
    println!();
    println!(
        "{:<12} {:>6} {:>14} {:>9} {:>9} {:>10}",
        "language", "batch", "call µs/rec", "vs rust", "recycles", "memory"
    );
    let python = Toolchain::Python.find().map(|_| toolchains::python_sensor_enrich("transform bench"));
    let js = Toolchain::JavaScript.find().map(|_| toolchains::js_sensor_enrich("transform bench"));
    let mut rust_us = [0.0; 2];
    for (language, wasm, memory_limit) in [
        ("rust", Some(Some(guests::SENSOR_ENRICH.into())), ByteSize::mib(64)),
        ("python", python, ByteSize::mib(64)),
        ("javascript", js, ByteSize::mib(256)),
    ] {
        let Some(Some(wasm)) = wasm else {
            println!("{language:<12} not measured: its toolchain is not installed");
            continue;
        };
        let wasm: std::path::PathBuf = wasm;
        let mut config = TransformConfig::new(language, &wasm);
        config.memory_limit = memory_limit;
        let mut transform = runtime.load(&config).expect("the guest loads");
        for (index, size) in [100, 1000].into_iter().enumerate() {
            let batch = readings(size);
            let us = per_record(size, || {
                black_box(transform.transform(&batch).expect("the batch runs"));
            }) / 1000.0;
            if language == "rust" {
                rust_us[index] = us;
            }
            println!(
                "{language:<12} {size:>6} {us:>14.2} {:>8.1}x {:>9} {:>10}",
                us / rust_us[index],
                transform.recycles(),
                memory_limit.to_string()
            );
        }
    }
}

/// The same transforms from another build (`FERRY_BENCH_BASELINE_DIR`, say
/// the previous release's components, by file name), call ns/record side by
/// side: one call of each in turn, so that the machine's drift (it is
/// shared) falls on both alike, and the median call of each.
fn against_baseline(runtime: &WasmRuntime, dir: &std::path::Path, filter: &[String]) {
    println!();
    println!("{:<14} {:>6} {:>16} {:>16} {:>10}", "transform", "batch", "this ns/rec", "baseline ns/rec", "change");
    for (name, wasm) in [("identity", guests::IDENTITY), ("sensor-enrich", guests::SENSOR_ENRICH)] {
        if !filter.is_empty() && !filter.iter().any(|wanted| name.contains(wanted.as_str())) {
            continue;
        }
        let file = std::path::Path::new(wasm).file_name().expect("a component file");
        let load = |path: &std::path::Path| runtime.load(&TransformConfig::new(name, path)).expect("the guest loads");
        let (mut this, mut baseline) = (load(std::path::Path::new(wasm)), load(&dir.join(file)));
        for size in [1, 1000] {
            let batch = readings(size);
            let (mut this_calls, mut baseline_calls) = (Vec::new(), Vec::new());
            let started = Instant::now();
            while started.elapsed() < MEASURE_FOR * 2 {
                for (transform, calls) in [(&mut this, &mut this_calls), (&mut baseline, &mut baseline_calls)] {
                    let call = Instant::now();
                    black_box(transform.transform(&batch).expect("the batch runs"));
                    calls.push(call.elapsed().as_nanos() as f64 / size as f64);
                }
            }
            let (this_ns, baseline_ns) = (median(&mut this_calls), median(&mut baseline_calls));
            let change = 100.0 * (this_ns - baseline_ns) / baseline_ns;
            println!("{name:<14} {size:>6} {this_ns:>16.0} {baseline_ns:>16.0} {change:>+9.1}%");
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Mean nanoseconds per record of `run`, which processes `size` records.
fn per_record(size: usize, mut run: impl FnMut()) -> f64 {
    let warm_until = Instant::now() + MEASURE_FOR / 10;
    while Instant::now() < warm_until {
        run();
    }
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed() < MEASURE_FOR {
        run();
        rounds += 1;
    }
    started.elapsed().as_nanos() as f64 / (rounds as f64 * size as f64)
}

/// What the chain does for identity, natively: one owned output per record.
fn native_identity(batch: &Batch) -> Vec<RecordResult> {
    batch
        .records
        .iter()
        .map(|record| {
            RecordResult::Emitted(vec![ferry::record::Emitted {
                payload: record.payload.clone(),
                encoding: record.encoding,
                key: record.key.clone(),
                headers: record.headers.clone().unwrap_or_default(),
                collection: None,
                write: None,
            }])
        })
        .collect()
}

fn native_enrich(batch: &Batch) -> Vec<Enriched> {
    batch.records.iter().map(|record| enrich(&record.payload)).collect()
}

/// `size` sensor readings as an Iggy batch would carry them.
fn readings(size: usize) -> Batch {
    let records = (0..size)
        .map(|i| Record {
            payload: format!(
                r#"{{"sensor_id":"s{}","temp":{}.5,"ts":"2026-11-26T03:{:02}:{:02}Z"}}"#,
                i % 50,
                i % 40,
                i / 60 % 60,
                i % 60
            )
            .into_bytes(),
            encoding: Encoding::Json,
            key: None,
            headers: None,
            timestamp: 1_764_126_000_000_000 + i as u64,
            origin: Origin::Iggy(IggyPosition {
                partition: 1,
                offset: i as u64,
                message_id: MessageId { high: 0, low: i as u64 },
                timestamp: 1_764_126_000_000_000 + i as u64,
            }),
        })
        .collect();
    Batch { source: BatchSource::Iggy(IggyTopic { stream: "sensors".into(), topic: "readings".into() }), records }
}

fn verdict(what: &str, measured: f64, target: f64) {
    let status = if measured <= target { "meets" } else { "MISSES" };
    println!("{what}: {measured:.2} ({status} target ≤ {target})");
}
