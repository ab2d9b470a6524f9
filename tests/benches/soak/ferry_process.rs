//! The soak's `ferry run`: the test crate's process helper, quiet (warnings
//! only, no progress lines) over a million records.

use std::path::Path;
use std::process::{Command, Stdio};

use ferry_tests::ferry_process::{FerryProcess, ferry_executable};

/// Writes `pipeline` (TOML) into `work`, checks it with `ferry validate`,
/// and starts `ferry run` on it, logging to `work/ferry.log`.
pub fn start(work: &Path, pipeline: &str) -> FerryProcess {
    let file = work.join("pipeline.toml");
    std::fs::write(&file, pipeline).expect("the pipeline file is written");
    let validated = Command::new(ferry_executable())
        .arg("--cache-dir")
        .arg(ferry_tests::compile_cache::dir())
        .arg("validate")
        .arg(&file)
        .stdout(Stdio::null())
        .status()
        .expect("ferry validate runs");
    assert!(validated.success(), "the soak's pipeline is valid");
    let quiet = [("FERRY_LOG", "warn"), ("FERRY_PROGRESS_INTERVAL", "0s")];
    FerryProcess::start_with(&file, &work.join("ferry.log"), &quiet)
}

/// Stops `ferry` as a service manager would, and checks that it exits 0.
pub fn stop(ferry: FerryProcess) {
    assert!(ferry.terminate(), "ferry exits 0 on SIGTERM");
}
