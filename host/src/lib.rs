//! Ferry moves data between Apache Iggy and MongoDB through user-supplied
//! WebAssembly transforms.
//!
//! The data flows through the modules in this order: [`config`] (parse and
//! validate, no I/O) → [`source`] → [`wasm`] (the transform chain) →
//! [`sink`], with [`dead_letter`] for what cannot be processed; [`pipeline`]
//! runs the stages and commits. [`record`] holds the types that travel
//! between them, [`service_error`] decides which failures are transient, and
//! [`cli`] holds the commands of the `ferry` binary.

pub mod bson_frame;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod document;
pub mod error_chain;
pub mod iggy_headers;
pub mod iggy_link;
pub mod json_to_bson;
pub mod pipeline;
pub mod record;
pub mod relaxed_json;
pub mod service_error;
pub mod sink;
pub mod source;
pub mod wasm;
