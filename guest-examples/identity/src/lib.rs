//! The smallest useful transform: every input record becomes one output with
//! the same payload, encoding and key, so the pipeline's defaults decide where
//! it is written.

use ferry_transform::{Error, NoConfig, Outcome, Record, Transform};

struct Identity;

impl Transform for Identity {
    type Config = NoConfig;

    fn new(_config: NoConfig) -> Result<Self, String> {
        Ok(Self)
    }

    fn record(&mut self, record: Record) -> Result<Outcome, Error> {
        Ok(Outcome::emit_record(record))
    }
}

ferry_transform::export!(Identity);
