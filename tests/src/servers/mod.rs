//! Real servers for end-to-end tests, found in this order:
//!
//! - Iggy: `IGGY_ADDRESS` (an existing server); an `iggy-server` binary
//!   (`IGGY_SERVER_BIN`, else `PATH`) started on a free loopback port with a
//!   fresh data directory; the `apache/iggy:0.8.0` image when Docker answers.
//! - MongoDB: `MONGODB_URI`; a `mongo` single-node replica set when Docker
//!   answers; SecantusDB (`secantusd-py` from `SECANTUSD_BIN`, `PATH` or the
//!   repository's `.venv`) on a free port with a fresh storage directory.
//!
//! A test whose server cannot be had says so in one loud line on stderr and
//! returns. With `FERRY_REQUIRE_SERVERS=1` (CI sets it) it fails instead.

mod delay_proxy;
mod docker;
mod iggy;
mod iggy_data;
mod iggy_segments;
mod mongo;
mod process;
mod tls;

use std::io::Write;

pub use delay_proxy::{Delay, DelayProxy};
pub use iggy::IggyServer;
pub use iggy_segments::TrimmedSegment;
pub use mongo::{MongoServer, SecantusOptions};
pub use process::find_binary;
pub use tls::{SERVER_NAME, TestCa};

/// Reports a missing server or toolchain: fails when servers are required
/// (`FERRY_REQUIRE_SERVERS`, as CI sets), otherwise
/// prints one unmistakable line past the test harness's output capture.
pub fn missing(test: &str, what: &str) {
    let line = format!("\n*** SKIPPED {test}: {what} ***\n");
    if std::env::var_os("FERRY_REQUIRE_SERVERS").is_some_and(|value| value != "0") {
        panic!("{line}(FERRY_REQUIRE_SERVERS is set, so what is missing fails the test)");
    }
    // Written to the raw stderr handle, which the harness does not capture.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A free TCP port on loopback (released at once; servers bind it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a loopback port is free")
}
