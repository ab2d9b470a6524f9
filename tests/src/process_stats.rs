//! CPU time and memory of a process, read from /proc, for the benchmarks.

use std::path::PathBuf;
use std::time::Duration;

/// User plus system CPU time of process `pid`.
pub fn cpu_time(pid: u32) -> Duration {
    stat_cpu_time(&format!("/proc/{pid}/stat"))
}

/// User plus system CPU time of the calling thread.
pub fn thread_cpu_time() -> Duration {
    stat_cpu_time("/proc/thread-self/stat")
}

fn stat_cpu_time(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the whole line.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    let per_second = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / per_second)
}

/// Resident memory of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The release `ferry` binary (`FERRY_BIN` overrides), or exits saying how
/// to build it.
pub fn ferry_binary() -> PathBuf {
    let ferry = std::env::var_os("FERRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/ferry"));
    if !ferry.is_file() {
        eprintln!("{} is missing: run `cargo build --release -p ferry` first (or set FERRY_BIN)", ferry.display());
        std::process::exit(2);
    }
    ferry
}

/// Asks a `ferry run` process to stop as a service manager would, and
/// checks that it exits 0.
pub fn stop(process: &mut std::process::Child) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(process.id().to_string()).status();
    let status = process.wait().expect("ferry exits");
    assert!(status.success(), "ferry exits 0 on SIGTERM, got {status}");
}
