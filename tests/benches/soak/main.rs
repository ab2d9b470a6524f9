//! Faults at scale, against real servers: Ferry killed with SIGKILL again
//! and again, MongoDB stopped and frozen under it, iggy-server crashed on
//! either side, over a million records each. One summary line per
//! scenario; exits 1 if any lost or duplicated a record.
//!
//! ```sh
//! cargo build --release -p ferry && cargo bench -p ferry-tests --bench soak
//! FERRY_SOAK_SIZE=100000 cargo bench -p ferry-tests --bench soak      # a quicker pass
//! FERRY_SOAK_SCENARIOS=killed,changes-killed cargo bench -p ferry-tests --bench soak
//! ```
//!
//! Knobs: `FERRY_SOAK_SIZE` (readings, and changes, per scenario; 1 000 000),
//! `FERRY_SOAK_KILLS` (50), `FERRY_SOAK_CHANGE_KILLS` (10),
//! `FERRY_SOAK_OUTAGE_SECONDS` (60), `FERRY_SOAK_SEED` (the kill moments; printed
//! so that a run can be repeated), `FERRY_SOAK_SCENARIOS` (comma-separated, of
//! `killed`, `mongo-stopped`, `mongo-frozen`, `iggy-source`, `iggy-sink`,
//! `changes-killed`; all by default). Ferry runs as its own process
//! (`target/release/ferry`, or `FERRY_BIN`); the servers come from the test
//! fixtures (iggy-server and SecantusDB, which this must be able to stop).

mod changes;
mod ferry_process;
mod readings;

use std::time::Duration;

use ferry_tests::bench::{servers, size_from_env};

const MIB: f64 = 1024.0 * 1024.0;

/// What a scenario found.
pub struct Summary {
    pub passed: bool,
    pub line: String,
}

/// xorshift64*: kill moments that a seed reproduces, without a crate.
pub struct Rng(u64);

impl Rng {
    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size = size_from_env("FERRY_SOAK_SIZE", 1_000_000);
    let kills = size_from_env("FERRY_SOAK_KILLS", 50);
    let change_kills = size_from_env("FERRY_SOAK_CHANGE_KILLS", 10);
    let outage = Duration::from_secs(size_from_env("FERRY_SOAK_OUTAGE_SECONDS", 60) as u64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let seed = std::env::var("FERRY_SOAK_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(now | 1);
    let wanted = std::env::var("FERRY_SOAK_SCENARIOS").unwrap_or_default();
    let runs = |scenario: &str| wanted.is_empty() || wanted.split(',').any(|name| name.trim() == scenario);
    println!("soak: {size} records per scenario, seed {seed}");

    let (iggy, mut mongo) = servers("soak").await;
    if !mongo.can_restart() {
        eprintln!("the soak stops and freezes MongoDB: it needs a SecantusDB of its own (unset MONGODB_URI)");
        std::process::exit(2);
    }
    let mut rng = Rng(seed);
    let work = tempfile::tempdir().expect("a temporary directory");
    println!("ferry's logs: {}/<scenario>/ferry.log", work.path().display());
    let mut summaries: Vec<Summary> = Vec::new();
    let mut report = |summary: Summary| {
        println!("{} {}", if summary.passed { "PASS" } else { "FAIL" }, summary.line);
        summaries.push(summary);
    };
    let dir = |name: &str| {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).expect("a work folder");
        dir
    };
    if runs("killed") {
        report(readings::killed(&dir("killed"), &iggy, &mongo, size, kills, &mut rng).await);
    }
    if runs("mongo-stopped") {
        let how = readings::Outage::Stopped;
        report(readings::mongo_away(&dir("mongo-stopped"), &iggy, &mut mongo, size, outage, how).await);
    }
    if runs("mongo-frozen") {
        let how = readings::Outage::Frozen;
        report(readings::mongo_away(&dir("mongo-frozen"), &iggy, &mut mongo, size, outage, how).await);
    }
    if runs("iggy-source") {
        report(readings::iggy_crashed(&dir("iggy-source"), &mongo, size).await.expect("an iggy-server to crash"));
    }
    if runs("iggy-sink") {
        report(changes::iggy_crashed(&dir("iggy-sink"), &mongo, size).await.expect("an iggy-server to crash"));
    }
    if runs("changes-killed") {
        report(changes::killed(&dir("changes-killed"), &iggy, &mongo, size, change_kills, &mut rng).await);
    }

    println!("\nsoak summary (seed {seed}):");
    for summary in &summaries {
        println!("  {} {}", if summary.passed { "PASS" } else { "FAIL" }, summary.line);
    }
    if summaries.iter().any(|summary| !summary.passed) {
        std::process::exit(1);
    }
}
