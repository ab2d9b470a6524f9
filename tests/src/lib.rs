//! Shared helpers for Ferry's end-to-end tests.

pub mod guests;
pub mod records;
