//! The one place where the WIT contract (`wit/transform.wit`) becomes Rust:
//! the ground floor both [`crate::record`] (the types that travel) and
//! [`crate::wasm`] (the engine that calls guests) stand on. Nothing else runs
//! `bindgen!`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "transform",
    // Tests and sinks compare records; the generated types are Clone already.
    additional_derives: [PartialEq],
});

pub use self::exports::ferry::transform::transformer;
pub use self::ferry::transform::logging;
pub use self::ferry::transform::types;
