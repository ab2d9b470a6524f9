//! Ferry moves data between Apache Iggy and MongoDB through user-supplied
//! WebAssembly transforms.
//!
//! The data flows through the modules in this order: [`config`] (parse and
//! validate, no I/O) → [`source`] → [`wasm`] (the transform chain) →
//! [`sink`] (with the dead-letter destination for what cannot be
//! processed); [`pipeline`] runs the stages and commits. [`record`] holds
//! the types that travel between them, [`encoding`] turns payloads into
//! documents and back, [`iggy_link`] is the one link to Iggy every Iggy
//! part shares and [`mongo_client`] its MongoDB counterpart, [`standby`]
//! the lease by which several processes run one change-stream pipeline,
//! [`error`] decides which failures are transient, and [`cli`] holds the
//! commands of the `ferry` binary.

pub mod admin;
pub mod cli;
pub mod config;
pub mod contract;
pub mod encoding;
pub mod error;
pub mod iggy_link;
pub mod mongo_client;
pub mod pipeline;
pub mod record;
pub mod resume;
pub mod runner;
pub mod sink;
pub mod source;
pub mod standby;
pub mod telemetry;
pub mod wasm;
