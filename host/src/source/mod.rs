//! Where batches come from. A source hands out batches and is told, in
//! order, when each one is durably written; only then does it move its
//! stored position. The pipeline knows nothing else about it.

mod iggy;
pub mod mongodb;

use std::future::Future;
use std::time::Duration;

pub use iggy::{IggyCheckpoint, IggySource, message_id_parts, to_record, watch_lag};
pub use mongodb::MongoSource;

use crate::error::ServiceError;
use crate::record::Batch;

/// A batch and the position to commit once it is written.
pub struct Polled<C> {
    pub batch: Batch,
    pub checkpoint: C,
}

/// A stream of batches with commit-after-write.
pub trait Source: Send {
    /// What `commit` takes: the position just after a batch.
    type Checkpoint: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// Reaches the server(s) the source reads from and keeps its position
    /// in, so the pipeline counts as running only once it can.
    fn connect(&mut self) -> impl Future<Output = Result<(), ServiceError>> + Send;

    /// The next batch, or `None` when nothing is waiting right now.
    fn poll(&mut self) -> impl Future<Output = Result<Option<Polled<Self::Checkpoint>>, ServiceError>> + Send;

    /// Stores the position: everything up to `checkpoint` is written.
    /// Called in poll order.
    fn commit(&mut self, checkpoint: Self::Checkpoint) -> impl Future<Output = Result<(), ServiceError>> + Send;

    /// Whether committing `later` also stores everything `earlier` stands
    /// for. Of several batches acknowledged together, only those no later
    /// one covers are committed: one round trip instead of many.
    fn covers(later: &Self::Checkpoint, earlier: &Self::Checkpoint) -> bool;

    /// How long to wait after a poll that found nothing.
    fn idle_pause(&self) -> Duration;

    /// Leaves cleanly (e.g. a consumer group), so others take over at once.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}
