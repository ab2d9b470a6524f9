//! The MongoDB sink: outputs become documents, written in source order with
//! unordered `insert` commands for runs of inserts and ordered `update`/`delete`
//! commands for the rest.

mod plan;
mod write;

use std::sync::Arc;

use bson::RawDocumentBuf;
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Database};

pub use plan::{Op, PlannedWrite, plan};

use super::{Prepare, Rejection, Sink};
use crate::config::MongoSinkConfig;
use crate::error::ServiceError;
use crate::record::Batch;
use crate::record::RecordResult;
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::MongoWrites;

/// How long the driver looks for a usable server before an operation fails
/// (and Ferry's retry loop logs and tries again), unless the URI says.
const SERVER_SELECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// A client for `uri` named "ferry" in server logs. Unless the URI says
/// otherwise, writes are acknowledged only once journaled on a majority:
/// Ferry commits its source position on that acknowledgement, so it must
/// survive a crash of the database.
pub async fn client(uri: &str) -> Result<Client, ServiceError> {
    let what = "reading the MongoDB connection string";
    let mut options = ClientOptions::parse(uri).await.map_err(|error| ServiceError::mongo(what, error))?;
    options.app_name.get_or_insert_with(|| "ferry".to_owned());
    options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
    options
        .write_concern
        .get_or_insert_with(|| WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build());
    Client::with_options(options).map_err(|error| ServiceError::mongo(what, error))
}

/// Asks the server for a `ping`: whether it can be reached at all.
pub async fn ping(client: &Client, what: &str) -> Result<(), ServiceError> {
    client
        .database("admin")
        .run_command(bson::doc! { "ping": 1 })
        .await
        .map(|_| ())
        .map_err(|error| ServiceError::mongo(what, error))
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
}

impl Prepare for MongoPlanner {
    type Prepared = MongoPlan;

    fn prepare(&self, batch: &Batch, results: &[RecordResult]) -> MongoPlan {
        let (writes, rejections) = plan(batch, results, &self.config, self.lineage.as_deref());
        MongoPlan { writes, rejections }
    }
}

impl Sink for MongoSink {
    type Prepare = MongoPlanner;

    fn preparer(&self) -> MongoPlanner {
        MongoPlanner { config: self.config.clone(), lineage: self.lineage.clone() }
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
