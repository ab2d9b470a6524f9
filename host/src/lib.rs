//! Ferry moves data between Apache Iggy and MongoDB through user-supplied
//! WebAssembly transforms.
//!
//! The data flows through the modules in this order: [`config`] (parse and
//! validate, no I/O) → a source → [`wasm`] (the transform chain) → a sink.
//! [`record`] holds the types that travel between them, and [`cli`] the
//! commands of the `ferry` binary.

pub mod cli;
pub mod config;
pub mod document;
pub mod record;
pub mod wasm;
