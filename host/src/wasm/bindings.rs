//! The one place where the WIT contract (`wit/transform.wit`) becomes Rust.
//!
//! Everything else in Ferry names these types through [`crate::record`] or
//! this module; nothing else runs `bindgen!`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "transform",
    // Tests and sinks compare records; the generated types are Clone already.
    additional_derives: [PartialEq],
});

pub use self::exports::ferry::transform::transformer;
pub use self::ferry::transform::logging;
pub use self::ferry::transform::types;
