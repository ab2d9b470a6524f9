//! Iggy → sensor-enrich → MongoDB through faults: ferry killed, MongoDB
//! stopped or frozen, iggy-server crashed. Every scenario produces its
//! readings first, then checks that MongoDB holds each exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{reading, unique};
use ferry_tests::process_stats::rss_bytes;
use ferry_tests::servers::{IggyServer, MongoServer};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};

use ferry_tests::ferry_process::FerryProcess;

use crate::ferry_process;
use crate::{MIB, Rng, Summary};

const PIPELINE: &str = "soak-readings";
const PARTITIONS: u32 = 3;
/// Long enough for 1 000 000 readings at a slow server's pace, with faults.
const DEADLINE: Duration = Duration::from_secs(1800);

/// A topic of `readings` readings and a database for them.
struct Run {
    stream: String,
    database: String,
    readings: usize,
}

impl Run {
    async fn produce(iggy: &IggyServer, readings: usize) -> Self {
        let run = Self { stream: unique("soak"), database: unique("soak"), readings };
        iggy.ensure_topic(&run.stream, "readings", PARTITIONS).await;
        iggy.produce(&run.stream, "readings", (0..readings).map(reading)).await;
        run
    }

    fn pipeline(&self, iggy: &IggyServer, mongo: &MongoServer) -> String {
        PipelineFile::iggy_to_mongo(PIPELINE, iggy, &self.stream, "readings", mongo, &self.database, "readings")
            .set("source.iggy.consumer_group", "soak")
            .transform("enrich", guests::SENSOR_ENRICH)
            .set("delivery.retry_max", "2s")
            .text()
    }

    /// Waits until ferry has committed `target` readings, checking that it
    /// stays up; returns how long that took.
    async fn wait_committed(&self, ferry: &mut FerryProcess, target: u64) -> Duration {
        let started = Instant::now();
        loop {
            ferry.assert_running();
            if committed(ferry, PIPELINE).await.is_some_and(|committed| committed >= target) {
                return started.elapsed();
            }
            assert!(started.elapsed() < DEADLINE, "{target} readings not committed within {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many readings MongoDB holds, lost, and held more than once.
    async fn verify(&self, mongo: &MongoServer) -> Tally {
        let collection = mongo.client().await.database(&self.database).collection::<Document>("readings");
        let mut cursor = collection.find(doc! {}).projection(doc! { "seq": 1, "_id": 0 }).await.expect("a find");
        let mut seen = vec![false; self.readings];
        let mut tally = Tally::default();
        while let Some(document) = cursor.try_next().await.expect("the documents read") {
            tally.written += 1;
            let seq = document.get_i64("seq").or_else(|_| document.get_i32("seq").map(i64::from)).expect("a seq");
            match seen.get_mut(seq as usize) {
                Some(seen) if !*seen => *seen = true,
                _ => tally.duplicated += 1,
            }
        }
        tally.lost = seen.iter().filter(|seen| !**seen).count();
        tally
    }
}

#[derive(Default)]
struct Tally {
    written: usize,
    lost: usize,
    duplicated: usize,
}

impl Tally {
    fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} written, {} lost, {} duplicated", self.written, self.lost, self.duplicated)
    }
}

/// `kills` SIGKILLs of ferry at random points of its progress (and a
/// random moment after each, so that they land mid-batch and mid-write).
pub async fn killed(
    work: &Path,
    iggy: &IggyServer,
    mongo: &MongoServer,
    readings: usize,
    kills: usize,
    rng: &mut Rng,
) -> Summary {
    let run = Run::produce(iggy, readings).await;
    let started = Instant::now();
    let mut ferry = ferry_process::start(work, &run.pipeline(iggy, mongo));
    let mut targets: Vec<u64> = (0..kills).map(|_| rng.below(readings as u64)).collect();
    targets.sort_unstable();
    for target in targets {
        run.wait_committed(&mut ferry, target).await;
        tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
        ferry.crash_and_restart();
    }
    run.wait_committed(&mut ferry, readings as u64).await;
    let elapsed = started.elapsed();
    ferry_process::stop(ferry);
    let tally = run.verify(mongo).await;
    Summary {
        passed: tally.passed(),
        line: format!("ferry kill -9 ×{kills} over {readings} readings: {tally}; {:.1} s", elapsed.as_secs_f64()),
    }
}

/// How MongoDB goes away.
#[derive(Debug, Clone, Copy)]
pub enum Outage {
    /// SIGTERM, then started again on the same storage.
    Stopped,
    /// SIGSTOP, then SIGCONT: connections open, nothing answers.
    Frozen,
}

/// MongoDB away for `outage` once a quarter of the readings are in.
pub async fn mongo_away(
    work: &Path,
    iggy: &IggyServer,
    mongo: &mut MongoServer,
    readings: usize,
    outage: Duration,
    how: Outage,
) -> Summary {
    let run = Run::produce(iggy, readings).await;
    let mut ferry = ferry_process::start(work, &run.pipeline(iggy, mongo));
    run.wait_committed(&mut ferry, readings as u64 / 4).await;
    let before = rss_bytes(ferry.pid());
    match how {
        Outage::Stopped => mongo.stop_gracefully(),
        Outage::Frozen => mongo.freeze(),
    }
    let away = Instant::now();
    let mut peak = before;
    while away.elapsed() < outage {
        ferry.assert_running();
        peak = peak.max(rss_bytes(ferry.pid()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let committed = committed(&ferry, PIPELINE).await.unwrap_or(0);
    // From the moment it is brought back (a restart takes SecantusDB a while).
    let back = Instant::now();
    match how {
        Outage::Stopped => mongo.start_again().await,
        Outage::Frozen => mongo.thaw(),
    }
    run.wait_committed(&mut ferry, committed + 1).await;
    let resumed = back.elapsed();
    run.wait_committed(&mut ferry, readings as u64).await;
    let after = rss_bytes(ferry.pid());
    ferry_process::stop(ferry);
    let tally = run.verify(mongo).await;
    let what = match how {
        Outage::Stopped => "stopped",
        Outage::Frozen => "frozen (SIGSTOP)",
    };
    Summary {
        passed: tally.passed(),
        line: format!(
            "MongoDB {what} {} s at 25% of {readings} readings: {tally}; committing again {:.1} s after it was brought back; \
             RSS {:.0} MiB before, peak {:.0} MiB while away, {:.0} MiB at the end; done {:.1} s after it was brought back",
            outage.as_secs(),
            resumed.as_secs_f64(),
            before as f64 / MIB,
            peak as f64 / MIB,
            after as f64 / MIB,
            back.elapsed().as_secs_f64(),
        ),
    }
}

/// iggy-server (saving every batch before acknowledging it) killed with
/// SIGKILL and started on its data folder, a third of the way in.
pub async fn iggy_crashed(work: &Path, mongo: &MongoServer, readings: usize) -> Option<Summary> {
    let mut iggy = IggyServer::start_durable("soak: iggy-server crashed under an Iggy source").await?;
    let run = Run::produce(&iggy, readings).await;
    let started = Instant::now();
    let mut ferry = ferry_process::start(work, &run.pipeline(&iggy, mongo));
    run.wait_committed(&mut ferry, readings as u64 / 3).await;
    iggy.restart().await;
    run.wait_committed(&mut ferry, readings as u64).await;
    let elapsed = started.elapsed();
    ferry_process::stop(ferry);
    let tally = run.verify(mongo).await;
    Some(Summary {
        passed: tally.passed(),
        line: format!(
            "iggy-server kill -9 and restart under the source, {readings} readings: {tally}; {:.1} s",
            elapsed.as_secs_f64()
        ),
    })
}

/// How many messages of its Iggy source the pipeline has committed, over
/// all partitions (`None` while ferry is starting).
async fn committed(ferry: &FerryProcess, pipeline: &str) -> Option<u64> {
    let status = ferry.pipeline(pipeline).await?;
    let partitions = status["position"]["partitions"].as_array()?;
    Some(partitions.iter().filter_map(|p| p["committed_offset"].as_u64()).map(|offset| offset + 1).sum())
}
