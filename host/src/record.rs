//! The records Ferry moves, as the WIT contract defines them.
//!
//! Sources build these, transforms see them, sinks write what comes out. They
//! are the generated contract types themselves, so a batch crosses into the
//! WebAssembly guest without being copied into another shape first.

pub use crate::wasm::bindings::types::{
    Batch, BatchSource, ClusterTime, Encoding, Header, IggyPosition, IggyTopic, MessageId, MongodbChange, Namespace,
    Operation, Origin, Outcome, Output, Record, Write,
};
