//! One compile cache for the tests of a run: a component one test compiled,
//! the next loads, as `ferry run` loads it after a restart. A Python or
//! JavaScript component takes 15–30 s to compile in a debug build, and
//! several tests run the same one.
//!
//! Entries are keyed by the component's bytes and the engine's settings
//! (see `ferry::wasm::CompileCache`), so a changed component or engine never
//! loads another's entry. The cache lives in `target/`, which a clean clone
//! starts without; the tests of the cache itself use folders of their own.

use std::path::PathBuf;

use ferry::wasm::{CompileCache, WasmRuntime};

use crate::toolchains::repository;

/// The folder the tests share.
pub fn dir() -> PathBuf {
    repository().join("target/ferry-tests-compile-cache")
}

/// An engine that loads from (and compiles into) the shared cache.
pub fn runtime() -> WasmRuntime {
    WasmRuntime::new(Some(CompileCache::new(dir()))).expect("the engine starts")
}
