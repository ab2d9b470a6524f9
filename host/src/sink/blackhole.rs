//! `[sink.blackhole]`: writes nothing and acknowledges every output, so a
//! benchmark measures Ferry itself — source, transforms, commits — without a
//! server's write ceiling (Vector and Redpanda Connect keep one for the same
//! reason).

use super::{Prepare, Rejection, Sink};
use crate::error::ServiceError;
use crate::record::{Batch, RecordResult};

pub struct BlackholeSink;

/// Nothing to encode.
pub struct NothingToPrepare;

impl Prepare for NothingToPrepare {
    type Prepared = ();

    fn prepare(&self, _batch: &Batch, _results: &[RecordResult]) {}
}

impl Sink for BlackholeSink {
    type Prepare = NothingToPrepare;

    fn preparer(&self) -> NothingToPrepare {
        NothingToPrepare
    }

    async fn connect(&mut self) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn write(
        &mut self,
        _batch: &Batch,
        _results: &[RecordResult],
        _prepared: &(),
    ) -> Result<Vec<Rejection>, ServiceError> {
        Ok(Vec::new())
    }
}
