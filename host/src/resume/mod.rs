//! How a change-stream pipeline resumes exactly where it stopped: the
//! position protocol shared by the MongoDB source (which reads positions
//! back on start) and the Iggy sink (which writes them with every message).
//!
//! - [`position`]: what a position is (after a change, or part-way through a
//!   copy of existing documents), and how it travels in a message's
//!   `ferry-position-*` headers;
//! - [`store`]: where a restart finds it again — the last message of each
//!   partition of the destination topic, and the `<topic>-positions`
//!   checkpoint topic for stretches where nothing was produced.

mod position;
mod store;

pub use position::{ChangePosition, ClusterTime, POSITION_HEADER, Relation, joined_pieces, pieces};
pub use store::{PositionStore, checkpoint_topic, partition_positions};
