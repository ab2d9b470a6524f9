//! Every default value of a pipeline file, in one place.

use std::time::Duration;

use bytesize::ByteSize;

/// How long one transform call (one batch) may run before it is stopped.
pub fn transform_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A record alone needs far less than a batch: a hanging record should cost
/// a tenth of a second, not the batch's whole deadline.
pub fn transform_record_timeout() -> Duration {
    Duration::from_millis(100)
}

/// How much linear memory one transform instance may grow to.
pub fn transform_memory_limit() -> ByteSize {
    ByteSize::mib(64)
}

/// Iggy's own defaults, so a local server works with no settings at all.
pub fn iggy_address() -> String {
    "127.0.0.1:8090".to_owned()
}

pub fn iggy_username() -> String {
    "iggy".to_owned()
}

pub fn iggy_password() -> String {
    "iggy".to_owned()
}

/// Records per poll (and so per transform call and write).
pub fn batch_size() -> u32 {
    1000
}

/// How long an idle consumer waits before polling again.
pub fn poll_interval() -> Duration {
    Duration::from_millis(10)
}

/// The fields that identify a document for upserts, replaces and deletes.
pub fn filter_key() -> Vec<String> {
    vec!["_id".to_owned()]
}

/// MongoDB write commands in flight per pipeline. One at a time caps a
/// pipeline at a batch per round trip, which across regions (~100 ms) is
/// ten batches a second whatever the cluster absorbs; four hide a round
/// trip up to three times the server's own time per batch, and stay well
/// inside the driver's default pool of ten connections (the source, the
/// probes and other pipelines share the client's servers).
pub fn max_concurrent_writes() -> usize {
    4
}

/// How long a written batch's position may wait to be stored with later
/// ones. A commit is a server round trip (0.15 ms on iggy-server 0.8, 0.6 ms
/// on 0.9) that the poll loop waits for; one per batch costs a fast pipeline
/// a quarter to half of its rate, one per tenth of a second costs nothing
/// measurable, and a restart replays at most that much more (harmlessly:
/// writes are idempotent). An idle or stopping pipeline stores at once.
pub fn commit_interval() -> Duration {
    Duration::from_millis(100)
}

/// The first pause after a transient failure; it doubles up to the maximum.
pub fn retry_initial() -> Duration {
    Duration::from_millis(100)
}

pub fn retry_max() -> Duration {
    Duration::from_secs(10)
}

/// How long one call to a server may take before it is retried. The MongoDB
/// driver has no socket timeout of its own, so without this a request lost
/// in a server restart could wait forever.
pub fn call_timeout() -> Duration {
    Duration::from_secs(30)
}

/// How long a change stream's server waits for events before answering.
pub fn max_await() -> Duration {
    Duration::from_millis(500)
}
