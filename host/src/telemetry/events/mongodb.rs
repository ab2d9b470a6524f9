//! What a MongoDB sink's writes did.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::telemetry::handle::PipelineTelemetry;

/// What one batch's MongoDB writes did, gathered while writing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MongoWrites {
    /// How long each write command took.
    pub commands: Vec<Duration>,
    /// Documents written, by collection and write kind (one of
    /// [`WRITE_KINDS`]).
    pub documents: BTreeMap<(String, &'static str), u64>,
    /// Inserts MongoDB already held, by collection.
    pub replays: BTreeMap<String, u64>,
}

impl MongoWrites {
    pub fn emit(self, telemetry: &PipelineTelemetry) {
        for elapsed in &self.commands {
            telemetry.inner.handles.mongodb_write.observe(elapsed.as_secs_f64());
        }
        for ((collection, write), count) in &self.documents {
            telemetry.collection(collection, write).0.inc_by(*count);
        }
        for (collection, count) in &self.replays {
            telemetry.collection(collection, "insert").1.inc_by(*count);
        }
    }
}
