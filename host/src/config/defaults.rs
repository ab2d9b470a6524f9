//! Every default value of a pipeline file, in one place.

use std::time::Duration;

use bytesize::ByteSize;

/// How long one transform call (one batch) may run before it is stopped.
pub fn transform_timeout() -> Duration {
    Duration::from_secs(5)
}

/// How much linear memory one transform instance may grow to.
pub fn transform_memory_limit() -> ByteSize {
    ByteSize::mib(64)
}
