//! The lease document: one per pipeline in `<database>.leases` of the
//! source's own MongoDB deployment, taken, renewed and released with single
//! conditional updates.
//!
//! ```text
//! { _id: <pipeline>, holder: "<host>/<pid>/<start>", epoch: 7,
//!   expires: <date>, renewed: <date> }
//! ```
//!
//! Only the server's clock decides whether a lease has expired: every
//! update reads `$$NOW` on the server, and the expiry is compared in the
//! update's filter, never left to a TTL index (whose monitor deletes
//! expired documents only about once a minute). Writes are acknowledged by
//! a majority, journaled (the client's default), so a lease the primary
//! granted survives an election.

use std::time::Duration;

use bson::{Document, doc};
use mongodb::options::ReturnDocument;
use mongodb::{Client, Collection};

use crate::error::ServiceError;

/// MongoDB's duplicate key error: the conditional upsert found the lease
/// held by someone else and tried to insert a second one.
const DUPLICATE_KEY: i32 = 11000;

pub struct LeaseStore {
    leases: Collection<Document>,
    pipeline: String,
    holder: String,
    lease_ms: i64,
}

impl LeaseStore {
    pub fn new(client: &Client, database: &str, pipeline: &str, lease: Duration) -> Self {
        Self {
            leases: client.database(database).collection("leases"),
            pipeline: pipeline.to_owned(),
            holder: holder_name(),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Who this process is in the lease document.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes the lease if it is free (never taken, expired, or released):
    /// the new epoch, or `None` while another process holds it.
    pub async fn acquire(&self) -> Result<Option<i64>, ServiceError> {
        // The comparison goes through `$toLong` (milliseconds since the
        // epoch) rather than dates: SecantusDB orders a stored date against
        // `$$NOW` wrongly, and both forms mean the same on MongoDB.
        let filter = doc! {
            "_id": &self.pipeline,
            "$expr": { "$lte": [{ "$toLong": "$expires" }, { "$toLong": "$$NOW" }] },
        };
        let update = vec![doc! { "$set": {
            "epoch": { "$add": [{ "$ifNull": ["$epoch", 0_i64] }, 1_i64] },
            "holder": &self.holder,
            "expires": { "$add": ["$$NOW", self.lease_ms] },
            "renewed": "$$NOW",
        } }];
        let taken =
            self.leases.find_one_and_update(filter, update).upsert(true).return_document(ReturnDocument::After).await;
        match taken {
            Ok(Some(lease)) => Ok(Some(epoch_of(&lease))),
            Ok(None) => Ok(None),
            Err(error) if is_duplicate_key(&error) => Ok(None),
            Err(error) => Err(ServiceError::mongo(self.what("taking"), error)),
        }
    }

    /// Extends the lease held in `epoch`; false when it is no longer this
    /// process's (another took it after it expired).
    pub async fn renew(&self, epoch: i64) -> Result<bool, ServiceError> {
        let update = vec![doc! { "$set": {
            "expires": { "$add": ["$$NOW", self.lease_ms] },
            "renewed": "$$NOW",
        } }];
        let renewed = self.leases.update_one(self.mine(epoch), update).await;
        renewed
            .map(|result| result.matched_count == 1)
            .map_err(|error| ServiceError::mongo(self.what("renewing"), error))
    }

    /// Gives the lease up, so a standby takes it at its next try.
    pub async fn release(&self, epoch: i64) -> Result<(), ServiceError> {
        let update = vec![doc! { "$set": { "expires": "$$NOW" } }];
        let released = self.leases.update_one(self.mine(epoch), update).await;
        released.map(drop).map_err(|error| ServiceError::mongo(self.what("releasing"), error))
    }

    fn mine(&self, epoch: i64) -> Document {
        doc! { "_id": &self.pipeline, "holder": &self.holder, "epoch": epoch }
    }

    fn what(&self, action: &str) -> String {
        format!("{action} the lease of pipeline {:?} in {}", self.pipeline, self.leases.namespace())
    }
}

/// `<host>/<pid>/<ms since the epoch>-<n>`: two processes never share it
/// (nor two pipelines of one), and an operator reading the lease document
/// sees where the leader runs.
fn holder_name() -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    format!("{host}/{}/{started}-{n}", std::process::id())
}

fn epoch_of(lease: &Document) -> i64 {
    match lease.get("epoch") {
        Some(bson::Bson::Int64(epoch)) => *epoch,
        Some(bson::Bson::Int32(epoch)) => i64::from(*epoch),
        Some(bson::Bson::Double(epoch)) => *epoch as i64,
        _ => 0,
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Command(command) => command.code == DUPLICATE_KEY,
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == DUPLICATE_KEY,
        _ => false,
    }
}
