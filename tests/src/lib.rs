//! Shared helpers for Ferry's end-to-end tests: the guest components
//! `build.rs` built, batch builders, real-server fixtures and waiting.

pub mod bed;
pub mod bench;
pub mod bench_run;
pub mod cli;
pub mod compile_cache;
pub mod ferry;
pub mod ferry_process;
pub mod guests;
pub mod logs;
pub mod pipeline_file;
pub mod pipelines;
pub mod process_stats;
pub mod records;
pub mod servers;
pub mod toolchains;
pub mod wait;

/// Sends Ferry's logs to the test's captured output (shown when it fails),
/// and keeps them for [`logs`]; `FERRY_LOG` picks the level, `info` by
/// default.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(logs::Capture)
        .try_init();
}
