//! Several processes, one pipeline: a change stream has one reader, so a
//! change-stream pipeline with `[source.mongodb] standby` runs in whichever
//! process holds its lease, while the others stand by to take over.
//!
//! Why a lease in MongoDB: the pipeline already depends on that deployment
//! (its source), whose replicated, majority-acknowledged writes give one
//! atomic conditional update to take a lease with; Iggy's consumer groups
//! fence consumers, not producers, and a Kubernetes `Lease` would tie the
//! feature to one way of running Ferry.
//!
//! - `lease`: the document, taken and renewed against the server's clock.
//! - `fence`: the leader's proof, by its own monotonic clock, checked
//!   before every write to the topic and the position store.
//! - `keeper`: renews the lease while the pipeline runs.
//! - `relay`: carries the leader's Iggy traffic, checking the fence right
//!   before every byte leaves for the server.
//!
//! The pipeline's loop over these (stand by, take over, lead, stand down)
//! is `pipeline::leadership`.

mod fence;
pub mod freeze_point;
mod keeper;
mod lease;
mod relay;

pub use fence::Fence;
pub use keeper::keep;
pub use lease::LeaseStore;
pub use relay::{FencedRelay, fenced_connection};
