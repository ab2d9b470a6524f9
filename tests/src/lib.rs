//! Shared helpers for Ferry's end-to-end tests: the guest components
//! `build.rs` built, batch builders, real-server fixtures and waiting.

pub mod guests;
pub mod pipelines;
pub mod records;
pub mod servers;
pub mod wait;
