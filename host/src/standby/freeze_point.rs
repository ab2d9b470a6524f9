//! The worst moment to freeze a leader, on demand, for the end-to-end test
//! of the fence: right after the sink's fence check passed, before its
//! request is written. A process frozen there and thawed after a standby
//! took over would send a stale batch but for the relay (see `relay`).
//!
//! `FERRY_TEST_FREEZE_AFTER_FENCE_CHECK=N` stops the process (SIGSTOP to
//! itself) the N-th time the check passes. Unset, as in production, it
//! costs one read of a value set once.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const VARIABLE: &str = "FERRY_TEST_FREEZE_AFTER_FENCE_CHECK";

/// Called after each passed fence check of the sink.
pub fn after_fence_check() {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let Some(at) = *AT.get_or_init(|| std::env::var(VARIABLE).ok()?.parse().ok()) else { return };
    if PASSED.fetch_add(1, Ordering::Relaxed) + 1 == at {
        tracing::warn!("{VARIABLE}={at}: freezing this process (SIGSTOP) right after a fence check, for a test");
        // Blocks this thread until the process is continued (SIGCONT).
        let _ = std::process::Command::new("kill").arg("-STOP").arg(std::process::id().to_string()).status();
    }
}
