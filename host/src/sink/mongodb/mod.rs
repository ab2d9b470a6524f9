//! The MongoDB sink: outputs become documents, written in source order with
//! unordered `insert` commands for runs of inserts and ordered `update`/`delete`
//! commands for the rest. With `max_concurrent_writes` above one, batches
//! that touch no common document are written side by side (see
//! [`footprint`]), each on a handle of the driver's one connection pool.

mod footprint;
mod plan;
mod write;

use std::sync::Arc;

use bson::RawDocumentBuf;
use mongodb::{Client, Database};

pub use footprint::Footprint;
pub use plan::{Op, PlannedWrite, plan};

use super::{Overlap, Prepare, Rejection, Sink};
use crate::config::MongoSinkConfig;
use crate::error::ServiceError;
use crate::mongo_client::{client, ping};
use crate::record::Batch;
use crate::record::RecordResult;
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::MongoWrites;

/// Cheap to clone: the driver's client and database are handles on one
/// connection pool.
#[derive(Clone)]
pub struct MongoSink {
    config: MongoSinkConfig,
    client: Client,
    database: Database,
    /// The write concern as a command field: Ferry builds its write
    /// commands itself, and the driver adds it only to its own operations.
    write_concern: RawDocumentBuf,
    telemetry: PipelineTelemetry,
    /// Which transform versions make the outputs (see `TransformChain::lineage`).
    lineage: Option<Arc<str>>,
}

impl MongoSink {
    /// Parses the URI and prepares a client; connections open on first use.
    pub async fn new(
        config: MongoSinkConfig,
        telemetry: &PipelineTelemetry,
        lineage: Option<String>,
    ) -> Result<Self, ServiceError> {
        let client = client(&config.uri).await?;
        let concern = client.write_concern().cloned().unwrap_or_default();
        let write_concern = bson::serialize_to_raw_document_buf(&concern)
            .map_err(|error| ServiceError::fatal("encoding the write concern", error))?;
        let database = client.database(&config.database);
        let lineage = lineage.map(Arc::from);
        Ok(Self { config, client, database, write_concern, telemetry: telemetry.clone(), lineage })
    }
}

/// Plans a batch's writes: documents, ids, filters, size checks.
pub struct MongoPlanner {
    config: MongoSinkConfig,
    lineage: Option<Arc<str>>,
}

/// A batch's planned writes and the inputs that cannot be written at all.
pub struct MongoPlan {
    writes: Vec<PlannedWrite>,
    rejections: Vec<Rejection>,
    footprint: Footprint,
}

impl Overlap for MongoPlan {
    fn depends_on(&self, other: &Self) -> bool {
        self.footprint.depends_on(&other.footprint)
    }
}

impl Prepare for MongoPlanner {
    type Prepared = MongoPlan;

    fn prepare(&self, batch: &Batch, results: &[RecordResult]) -> MongoPlan {
        let (writes, rejections) = plan(batch, results, &self.config, self.lineage.as_deref());
        // Only needed when batches can overlap.
        let footprint = match self.config.max_concurrent_writes {
            1 => Footprint::default(),
            _ => Footprint::of(&writes),
        };
        MongoPlan { writes, rejections, footprint }
    }
}

impl Sink for MongoSink {
    type Prepare = MongoPlanner;

    fn preparer(&self) -> MongoPlanner {
        MongoPlanner { config: self.config.clone(), lineage: self.lineage.clone() }
    }

    fn more_lanes(&self) -> Vec<Self> {
        (1..self.config.max_concurrent_writes).map(|_| self.clone()).collect()
    }

    async fn connect(&mut self) -> Result<(), ServiceError> {
        ping(&self.client, "reaching the MongoDB sink").await
    }

    async fn write(&mut self, _: &Batch, _: &[RecordResult], plan: &MongoPlan) -> Result<Vec<Rejection>, ServiceError> {
        let mut rejections = plan.rejections.clone();
        let mut tally = MongoWrites::default();
        let written = write::execute(&self.database, &self.write_concern, &plan.writes, &mut tally).await;
        // Commands that went through count even when a later one failed.
        tally.emit(&self.telemetry);
        rejections.extend(written?);
        rejections.sort_by_key(|rejection| rejection.input);
        Ok(rejections)
    }
}
