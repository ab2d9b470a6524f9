//! One change-stream pipeline in several `ferry run` processes: one leads,
//! the others stand by. Through `kill -9`, a freeze past the lease
//! (SIGSTOP, then SIGCONT) and a planned stop (SIGTERM), every change
//! arrives in the topic once, in order per document. Real processes, so the
//! signals are real; a 2 s lease keeps the tests short (the bench measures
//! the default).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ferry_tests::bed::TestBed;
use ferry_tests::ferry_process::{FerryProcess, sole_leader};
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::unique;
use ferry_tests::servers::IggyServer;
use ferry_tests::wait;
use mongodb::Collection;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const PATIENCE: Duration = Duration::from_secs(90);
const PIPELINE: &str = "standby-changes";
/// Documents written, and versions of each: 20 000 changes.
const DOCUMENTS: i64 = 100;
const VERSIONS: i64 = 200;

struct Setup {
    bed: TestBed,
    work: tempfile::TempDir,
    file: PathBuf,
    started: usize,
}

ferry_tests::setup_on_bed!(Setup);

impl Setup {
    async fn new(test: &str) -> Option<Self> {
        Some(Self::on(TestBed::start(test, "standby").await?).await)
    }

    async fn new_0_9(test: &str) -> Option<Self> {
        Some(Self::on(TestBed::around(test, IggyServer::start_0_9(test).await?, "standby").await?).await)
    }

    async fn on(bed: TestBed) -> Self {
        let work = tempfile::tempdir().unwrap();
        // Every process reads the same file, as replicas of one deployment
        // do. The stream starts at a second (the start's precision) after
        // the server's first write, inside its history: a fresh server has
        // none before (SecantusDB opens a stream from earlier, but a
        // position taken there cannot be resumed, as on MongoDB).
        bed.collection("seed").await.insert_one(doc! { "seeded": true }).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let file =
            PipelineFile::changes_to_iggy(PIPELINE, &bed.mongo, Some(&bed.database), &bed.iggy, &bed.stream, "changes")
                .set("source.mongodb.collection", "counters")
                .set("source.mongodb.start", format!("timestamp:{start}"))
                .set("source.mongodb.standby.lease", "2s")
                .set("source.mongodb.standby.database", unique("leases"))
                .set("sink.iggy.create.partitions", 3)
                .test_pace()
                .write(work.path());
        Self { bed, work, file, started: 0 }
    }

    fn start_ferry(&mut self) -> FerryProcess {
        self.start_ferry_with(&[])
    }

    fn start_ferry_with(&mut self, variables: &[(&str, &str)]) -> FerryProcess {
        self.started += 1;
        let log = self.work.path().join(format!("ferry-{}.log", self.started));
        // A progress line a second, so a test can read the state in it.
        let variables: Vec<(&str, &str)> =
            [("FERRY_PROGRESS_INTERVAL", "1s")].into_iter().chain(variables.iter().copied()).collect();
        FerryProcess::start_with(&self.file, &log, &variables)
    }

    /// Messages in the topic.
    async fn produced(&self) -> u64 {
        self.iggy.messages_in(&self.stream, "changes").await
    }

    async fn wait_until_produced(&self, at_least: u64) {
        wait::until(&format!("{at_least} changes in the topic"), PATIENCE, || async {
            (self.produced().await >= at_least).then_some(())
        })
        .await;
    }

    /// Every document's versions, in topic order, once the marker (written
    /// after the last version) is in.
    async fn versions(&self) -> BTreeMap<String, Vec<i64>> {
        let messages = wait::until("the marker's change", PATIENCE, || async {
            let messages = self.iggy.read_topic(&self.stream, "changes").await;
            let marker = messages.iter().any(|message| key(message) == r#"{"_id":"marker"}"#);
            marker.then_some(messages)
        })
        .await;
        let mut versions: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for message in messages.iter().filter(|message| key(message) != r#"{"_id":"marker"}"#) {
            let event: Value = serde_json::from_slice(&message.payload).unwrap();
            // An insert carries the document, an update its delta.
            let version = match event["operationType"].as_str() {
                Some("update") => &event["updateDescription"]["updatedFields"]["v"],
                _ => &event["fullDocument"]["v"],
            };
            versions.entry(key(message)).or_default().push(version.as_i64().unwrap());
        }
        versions
    }
}

fn key(message: &ferry::iggy_link::Message) -> String {
    message.header("ferry-document-key").unwrap_or_default()
}

/// Which of `processes` leads, once exactly one says so.
async fn leader(processes: &[FerryProcess]) -> usize {
    wait::until("one leader", PATIENCE, || sole_leader(processes, PIPELINE)).await
}

/// Writes `VERSIONS` versions of each of `DOCUMENTS` documents (each
/// version one `updateMany`, so a change per document), each only once
/// `allowed` reaches it; then the marker.
fn write_versions(counters: Collection<Document>, mut allowed: watch::Receiver<i64>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let documents = (0..DOCUMENTS).map(|id| doc! { "_id": id, "v": 0 });
        counters.insert_many(documents).await.unwrap();
        for version in 1..VERSIONS {
            allowed.wait_for(|allowed| *allowed > version).await.unwrap();
            counters.update_many(doc! {}, doc! { "$set": { "v": version as i32 } }).await.unwrap();
        }
        counters.insert_one(doc! { "_id": "marker" }).await.unwrap();
    })
}

fn assert_every_version_once_in_order(versions: &BTreeMap<String, Vec<i64>>) {
    assert_eq!(versions.len(), DOCUMENTS as usize, "every document has changes in the topic");
    for (key, versions) in versions {
        assert_eq!(versions, &(0..VERSIONS).collect::<Vec<i64>>(), "every change of {key} once, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_three_times_every_change_arrives_once_in_order() {
    let test = "the_leader_killed_three_times_every_change_arrives_once_in_order";
    let Some(mut setup) = Setup::new(test).await else { return };
    killed_three_times(&mut setup).await;
}

async fn killed_three_times(setup: &mut Setup) {
    let mut processes = vec![setup.start_ferry(), setup.start_ferry()];
    let (allow, allowed) = watch::channel(0);
    let writer = write_versions(setup.collection("counters").await, allowed);
    for kill in 0..3 {
        // A quarter of the versions at a time, the leader killed while
        // they flow.
        let segment = VERSIONS / 4;
        allow.send_replace(segment * (kill + 1));
        setup.wait_until_produced((segment * kill * DOCUMENTS) as u64 + 500).await;
        let leading = leader(&processes).await;
        processes.remove(leading).kill();
        processes.push(setup.start_ferry());
        // The standby takes over; the new process stands by.
        leader(&processes).await;
    }
    allow.send_replace(VERSIONS);
    writer.await.unwrap();
    let versions = setup.versions().await;
    let mut takeovers = 0.0;
    for process in &processes {
        let series = format!(r#"ferry_leader_takeovers_total{{pipeline="{PIPELINE}"}}"#);
        takeovers += process.metric(&series).await.unwrap_or(0.0);
    }
    assert_every_version_once_in_order(&versions);
    assert!(takeovers >= 1.0, "a standby took over after the last kill");

    // A planned stop hands over at once: the lease is released, not left
    // to run out.
    let leading = leader(&processes).await;
    let leaving = processes.remove(leading);
    let holder = leaving.pipeline(PIPELINE).await.unwrap()["standby"]["holder"].as_str().unwrap().to_owned();
    assert!(leaving.terminate(), "SIGTERM stops the leader cleanly");
    let leases = setup.mongo.client().await.database(&lease_database(setup)).collection::<Document>("leases");
    let lease = leases.find_one(doc! { "_id": PIPELINE }).await.unwrap().expect("the lease document");
    let released = lease.get_str("holder").unwrap() != holder
        || lease.get_datetime("expires").unwrap().to_system_time() <= std::time::SystemTime::now();
    assert!(released, "the stopped leader released its lease: {lease}");
    leader(&processes).await;
}

/// The lease database named in the test's pipeline file.
fn lease_database(setup: &Setup) -> String {
    let text = std::fs::read_to_string(&setup.file).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    file["source"]["mongodb"]["standby"]["database"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_iggy_server_0_9_a_leader_frozen_past_its_lease_stands_down_and_nothing_is_produced_twice() {
    let test = "on_iggy_server_0_9_a_leader_frozen_past_its_lease_stands_down_and_nothing_is_produced_twice";
    let Some(mut setup) = Setup::new_0_9(test).await else { return };
    // Frozen mid-stream, for longer than its lease.
    let (first, second) = frozen_past_the_lease(&mut setup, Freeze::BySignal).await;
    let leader_series = format!(r#"ferry_leader{{pipeline="{PIPELINE}"}}"#);
    assert_eq!(first.metric(&leader_series).await, Some(0.0), "the thawed process no longer leads");
    assert_eq!(second.metric(&leader_series).await, Some(1.0));
    assert!(first.log().contains("stood down"), "the thawed process says it stood down:\n{}", first.log());
}

/// The worst moment: the leader freezes itself right after its fence check
/// passed, before its request is written (a test hook in the sink), and is
/// thawed after the standby took over and produced. Without the fenced
/// relay its batch lands a second time; with it, nothing it sends arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_between_its_fence_check_and_its_write_sends_nothing_when_thawed() {
    let test = "a_leader_frozen_between_its_fence_check_and_its_write_sends_nothing_when_thawed";
    let Some(mut setup) = Setup::new(test).await else { return };
    let (first, _) = frozen_past_the_lease(&mut setup, Freeze::AfterFenceCheck).await;
    assert!(first.log().contains("freezing this process"), "the leader froze at the hook:\n{}", first.log());
}

/// How the leader is frozen.
enum Freeze {
    /// SIGSTOP from the test, wherever the leader is.
    BySignal,
    /// By itself, right after a fence check passed (the sink's test hook).
    AfterFenceCheck,
}

/// Starts a leader and a standby, freezes the leader while changes flow,
/// waits until the standby leads and has produced, thaws the old leader
/// and waits until it stands by; then checks every version is in the topic
/// once, in order. The old leader and the new one.
async fn frozen_past_the_lease(setup: &mut Setup, freeze: Freeze) -> (FerryProcess, FerryProcess) {
    let first = match freeze {
        Freeze::BySignal => setup.start_ferry(),
        Freeze::AfterFenceCheck => setup.start_ferry_with(&[("FERRY_TEST_FREEZE_AFTER_FENCE_CHECK", "20")]),
    };
    leader(std::slice::from_ref(&first)).await;
    let second = setup.start_ferry();
    wait::until("the second process standing by", PATIENCE, || async {
        (second.role(PIPELINE).await.as_deref() == Some("standby")).then_some(())
    })
    .await;
    // Standing by is a standby's job: it is ready, says so in the state
    // gauge and the progress line, and has reached Iggy already.
    wait::until("the standby's progress line", PATIENCE, || async {
        second.log().contains(&format!("{PIPELINE}: standby,")).then_some(())
    })
    .await;
    assert_eq!(second.ready().await, Some(200), "a standby is ready");
    let standing_by = format!(r#"ferry_pipeline_state{{pipeline="{PIPELINE}",state="standby"}}"#);
    assert_eq!(second.metric(&standing_by).await, Some(1.0));
    wait::until("the standby's Iggy connection open", PATIENCE, || async {
        let status = second.pipeline(PIPELINE).await?;
        status["iggy_protocol"].is_string().then_some(())
    })
    .await;
    let (allow, allowed) = watch::channel(VERSIONS / 2);
    let writer = write_versions(setup.collection("counters").await, allowed);
    match freeze {
        Freeze::BySignal => {
            setup.wait_until_produced(1_000).await;
            first.freeze();
        }
        Freeze::AfterFenceCheck => {
            wait::until("the leader frozen at its freeze point", PATIENCE, || async {
                first.is_frozen().then_some(())
            })
            .await;
        }
    }
    let produced_at_freeze = setup.produced().await;
    wait::until("the standby leading", PATIENCE, || async {
        (second.role(PIPELINE).await.as_deref() == Some("leader")).then_some(())
    })
    .await;
    setup.wait_until_produced(produced_at_freeze + 500).await;
    first.thaw();
    wait::until("the thawed process standing by", PATIENCE, || async {
        (first.role(PIPELINE).await.as_deref() == Some("standby")).then_some(())
    })
    .await;

    allow.send_replace(VERSIONS);
    writer.await.unwrap();
    assert_every_version_once_in_order(&setup.versions().await);
    (first, second)
}

/// MongoDB (where the lease lives) goes away under a leader: its renewals
/// fail, it stands down before its lease could run out, and once MongoDB is
/// back it takes the pipeline over again and goes on where the topic ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mongodb_gone_the_leader_stands_down_and_takes_over_again_when_it_is_back() {
    let test = "with_mongodb_gone_the_leader_stands_down_and_takes_over_again_when_it_is_back";
    let Some(mut setup) = Setup::new(test).await else { return };
    if !setup.mongo.can_restart() {
        ferry_tests::servers::missing(test, "a MongoDB this test may stop (MONGODB_URI is someone else's)");
        return;
    }
    let only = setup.start_ferry();
    leader(std::slice::from_ref(&only)).await;
    let (allow, allowed) = watch::channel(VERSIONS / 4);
    let writer = write_versions(setup.collection("counters").await, allowed);
    // Everything allowed so far is in the topic before MongoDB goes.
    setup.wait_until_produced((VERSIONS / 4 * DOCUMENTS) as u64).await;

    setup.mongo.stop();
    wait::until("the leader standing down", PATIENCE, || async {
        (only.role(PIPELINE).await.as_deref() == Some("standby")).then_some(())
    })
    .await;
    // A standby that cannot ask for the lease could not take over: not ready.
    wait::until("the standby not ready while it cannot ask", PATIENCE, || async {
        (only.ready().await == Some(503)).then_some(())
    })
    .await;
    let failed = format!(r#"ferry_lease_renewals_failed_total{{pipeline="{PIPELINE}"}}"#);
    assert!(only.metric(&failed).await.is_some_and(|failed| failed >= 1.0), "failed renewals are counted");
    assert!(only.log().contains("stood down"), "{}", only.log());

    setup.mongo.start_again().await;
    wait::until("the pipeline led again, and ready", PATIENCE, || async {
        let leading = only.role(PIPELINE).await.as_deref() == Some("leader");
        (leading && only.ready().await == Some(200)).then_some(())
    })
    .await;
    allow.send_replace(VERSIONS);
    writer.await.unwrap();
    assert_every_version_once_in_order(&setup.versions().await);
}
