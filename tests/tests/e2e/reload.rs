//! Reloading against real servers: a transform replaced while data flows,
//! every record written exactly once and by the version live at the time;
//! an invalid version refused while the old one runs on; and a folder's
//! pipelines started, swapped and stopped as their files come and go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_tests::bed::TestBed;
use ferry_tests::ferry::RunningFerry;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{produce, reading};
use ferry_tests::{guests, wait};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(120);

/// The bed, with the folder Ferry watches.
struct Setup {
    bed: TestBed,
    files: tempfile::TempDir,
}

ferry_tests::setup_on_bed!(Setup);

impl Setup {
    async fn new(test: &str) -> Option<Self> {
        let bed = TestBed::start(test, "reload").await?;
        Some(Self { bed, files: tempfile::tempdir().expect("a temporary directory") })
    }

    /// A pipeline `name` from topic `name` through `wasm` (a file name in
    /// the pipeline folder) into collection `name`, with two transform
    /// instances: a reload swaps both.
    fn pipeline(&self, name: &str, wasm: &str, batch_size: u32) -> PipelineFile {
        PipelineFile::iggy_to_mongo(name, &self.iggy, &self.stream, name, &self.mongo, &self.database, name)
            .set("source.iggy.create.partitions", 1)
            .set("delivery.transform_instances", 2)
            .set("source.iggy.batch_size", batch_size)
            .transform("stamp", wasm)
            .dead_letter(&self.stream, &format!("{name}-dlq"))
            .test_pace()
            .set("delivery.call_timeout", "15s")
    }

    fn path(&self, file: &str) -> PathBuf {
        self.files.path().join(file)
    }
}

/// Replaces `path` as a build would: written beside it, then renamed over
/// it, so a reader never sees half a file.
fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn version(n: u16) -> String {
    format!("v{n:03}")
}

/// The stamp each reading of `collection` carries, by `seq`.
async fn versions_by_seq(collection: &mongodb::Collection<Document>) -> BTreeMap<i64, Vec<String>> {
    let documents: Vec<Document> = collection
        .find(doc! {})
        .projection(doc! { "seq": 1, "version": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut by_seq: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for document in documents {
        let seq = document.get_i64("seq").or_else(|_| document.get_i32("seq").map(i64::from)).unwrap();
        by_seq.entry(seq).or_default().push(document.get_str("version").unwrap_or("none").to_owned());
    }
    by_seq
}

/// Readings flow through the `stamp` transform while its component
/// is replaced by five new versions and once by a broken file, with
/// `--watch`. How the test tells which version wrote a reading: each
/// version is the same component with another version number in its data,
/// which it writes into every document; the topic has one partition, so
/// `seq` order is the order readings were polled, and the versions must
/// follow each other in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_flow_exactly_once_while_the_transform_is_replaced_five_times_and_once_broken() {
    let Some(setup) =
        Setup::new("readings_flow_exactly_once_while_the_transform_is_replaced_five_times_and_once_broken").await
    else {
        return;
    };
    let wasm = setup.path("stamp.wasm");
    replace(&wasm, &guests::stamp_version(0));
    let file = setup.path("readings.toml");
    std::fs::write(&file, setup.pipeline("readings", "stamp.wasm", 500).text()).unwrap();
    let ferry = RunningFerry::start(&[file], true).await;

    // Readings keep coming, a thousand at a time, until the last version is
    // live, and one thousand more for it to write: the test lasts as long as
    // the swaps take, whatever the machine.
    let client = setup.iggy.client().await;
    setup.iggy.ensure_topic(&setup.stream, "readings", 1).await;
    let stream = setup.stream.clone();
    let last_swapped = CancellationToken::new();
    let producing_until = last_swapped.clone();
    let producer = tokio::spawn(async move {
        let mut sent = 0;
        loop {
            let last = producing_until.is_cancelled();
            produce(&client, &stream, "readings", (sent..sent + 1000).map(reading)).await;
            sent += 1000;
            if last {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });

    let mut pauses = Vec::new();
    for n in 1..=5u16 {
        // The live version has written something before the next replaces it.
        let live = version(n - 1);
        wait::until(&format!("{live} to write"), PATIENCE, || async {
            (setup.count("readings", doc! { "version": &live }).await > 0).then_some(())
        })
        .await;
        if n == 3 {
            // A broken build: refused, and the running version goes on.
            replace(&wasm, b"\0asm not a component at all");
            let refused = wait::until("the broken version to be refused", PATIENCE, || async {
                let status = ferry.pipeline("readings").await;
                status["reload"]["refused"]["message"].as_str().map(str::to_owned)
            })
            .await;
            assert!(refused.contains("stamp"), "names the transform: {refused}");
            assert_eq!(ferry.metric(r#"ferry_reload_failures_total{pipeline="readings"}"#).await, Some(1.0));
            let before = setup.count("readings", doc! { "version": &live }).await;
            wait::until(&format!("{live} to go on writing"), PATIENCE, || async {
                (setup.count("readings", doc! { "version": &live }).await > before).then_some(())
            })
            .await;
            assert_eq!(ferry.pipeline("readings").await["state"], "running");
        }
        let next = guests::stamp_version(n);
        replace(&wasm, &next);
        let swapped = wait::until(&format!("{} to be swapped in", version(n)), PATIENCE, || async {
            let status = ferry.pipeline("readings").await;
            (status["transforms"][0]["sha256"] == sha256(&next) && status["reload"]["swaps"] == n).then_some(status)
        })
        .await;
        assert!(swapped["reload"]["refused"].is_null(), "a good version clears the refusal: {swapped}");
        let pause = wait::until("the new version to run", PATIENCE, || async {
            let status = ferry.pipeline("readings").await;
            (status["state"] == "running").then(|| status["reload"]["last_pause_seconds"].as_f64()).flatten()
        })
        .await;
        pauses.push((pause, swapped["reload"]["last_drain_seconds"].as_f64().unwrap()));
    }
    last_swapped.cancel();
    let sent = producer.await.unwrap();
    let readings = setup.collection("readings").await;
    wait::until("every reading", PATIENCE, || async {
        (readings.estimated_document_count().await.unwrap_or(0) >= sent as u64).then_some(())
    })
    .await;
    let report = ferry.stop().await;
    assert!(report.all_stopped_cleanly(), "{report:?}");

    let by_seq = versions_by_seq(&readings).await;
    assert_eq!(by_seq.len(), sent, "every reading arrived");
    assert!(by_seq.values().all(|versions| versions.len() == 1), "no reading was written twice");
    let in_order: Vec<&str> = by_seq.values().map(|versions| versions[0].as_str()).collect();
    let mut runs: Vec<&str> = in_order.clone();
    runs.dedup();
    let expected: Vec<String> = (0..=5).map(version).collect();
    assert_eq!(runs, expected, "each version wrote one stretch of readings, in the order they went live");
    println!("swaps (pause, drain) in seconds: {pauses:?}");
    for (pause, drain) in pauses {
        // The new version was loaded before the old one was drained, so a
        // swap holds data up for the drain and a reconnect, never for a
        // compile; this bound only catches a drain or reconnect gone wrong.
        assert!(pause >= drain && pause < drain + 10.0, "pause {pause}s against drain {drain}s");
    }
}

/// SIGHUP with a folder of pipelines: a changed file is swapped, an
/// unchanged one is not touched, a new one starts, a removed one stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_changed_pipelines_starts_new_ones_and_stops_removed_ones() {
    let Some(setup) = Setup::new("a_reload_swaps_changed_pipelines_starts_new_ones_and_stops_removed_ones").await
    else {
        return;
    };
    replace(&setup.path("stamp.wasm"), &guests::stamp_version(1));
    for name in ["kept", "changed", "removed"] {
        setup.pipeline(name, "stamp.wasm", 100).write(setup.files.path());
    }
    let ferry = RunningFerry::start(&[setup.files.path().to_owned()], false).await;
    for name in ["kept", "changed", "removed"] {
        wait::until(&format!("{name} to run"), PATIENCE, || async {
            (ferry.pipeline(name).await["state"] == "running").then_some(())
        })
        .await;
    }
    let kept_since = ferry.pipeline("kept").await["since"].clone();

    setup.pipeline("changed", "stamp.wasm", 7).write(setup.files.path());
    setup.pipeline("added", "stamp.wasm", 100).write(setup.files.path());
    std::fs::remove_file(setup.path("removed.toml")).unwrap();
    ferry.reload().await;
    wait::until("changed to be swapped and added to run", PATIENCE, || async {
        let changed = ferry.pipeline("changed").await;
        let added = ferry.pipeline("added").await;
        (changed["reload"]["swaps"] == 1 && changed["state"] == "running" && added["state"] == "running").then_some(())
    })
    .await;
    wait::until("removed to be gone", PATIENCE, || async {
        (ferry.get("/pipelines/removed").await.0 == 404).then_some(())
    })
    .await;
    let kept = ferry.pipeline("kept").await;
    assert_eq!((&kept["reload"]["swaps"], &kept["since"]), (&Value::from(0), &kept_since), "untouched: {kept}");
    assert_eq!(ferry.metric(r#"ferry_records_read_total{pipeline="removed"}"#).await, None, "its series are gone");

    // Everything flows after the reload, through the swapped version too.
    let client = setup.iggy.client().await;
    for name in ["kept", "changed", "added"] {
        produce(&client, &setup.stream, name, (0..30).map(reading)).await;
    }
    for name in ["kept", "changed", "added"] {
        wait::until(&format!("{name}'s readings"), PATIENCE, || async {
            (setup.count(name, doc! {}).await == 30).then_some(())
        })
        .await;
    }
    let report = ferry.stop().await;
    assert_eq!(report.pipelines.keys().collect::<Vec<_>>(), ["added", "changed", "kept"]);
    assert!(report.all_stopped_cleanly(), "{report:?}");
}
