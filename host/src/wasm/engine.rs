//! The WebAssembly machinery every transform shares: one engine, one linker,
//! the epoch clock (`epoch_clock.rs`) and the compile cache.

use std::sync::Arc;

use sha2::Digest;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::cache::CompileCache;
use super::epoch_clock::EpochClock;
use super::error::TransformError;
use super::host_state::HostState;
use super::transform::Transform;
use crate::config::TransformConfig;
use crate::contract as bindings;

/// The engine could not be set up (a wasmtime configuration problem).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly engine")]
pub struct EngineError(#[source] super::error::WasmCause);

/// Shared by all transforms of a process.
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<CompileCache>,
    clock: Arc<EpochClock>,
}

impl WasmRuntime {
    /// A runtime that caches compiled components in `cache`, if given.
    pub fn new(cache: Option<CompileCache>) -> Result<Self, EngineError> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|error| EngineError(error.into_boxed_dyn_error()))?;
        let mut linker = Linker::new(&engine);
        // Rust's std imports wasi:cli and wasi:io even for pure computation, so
        // WASI is linked; what it may reach is decided per store by the grants.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|error| EngineError(error.into_boxed_dyn_error()))?;
        bindings::Transform::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|error| EngineError(error.into_boxed_dyn_error()))?;
        let clock = Arc::new(EpochClock::start(engine.clone()));
        Ok(Self { engine, linker, cache, clock })
    }

    /// Reads, compiles (or loads from the cache) and links one transform. It
    /// is instantiated and configured on [`Transform::start`] or first use.
    pub fn load(&self, config: &TransformConfig) -> Result<Transform, TransformError> {
        let name = &config.name;
        let wasm = std::fs::read(&config.wasm).map_err(|source| TransformError::Read {
            transform: name.clone(),
            path: config.wasm.clone(),
            source,
        })?;
        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &wasm),
            None => wasmtime::component::Component::new(&self.engine, &wasm)
                .map(|component| (component, super::cache::CacheOutcome::Miss)),
        };
        let (component, cache_outcome) = compiled.map_err(|error| TransformError::Compile {
            transform: name.clone(),
            path: config.wasm.clone(),
            source: error.into_boxed_dyn_error(),
        })?;
        let pre = self.linker.instantiate_pre(&component).and_then(bindings::TransformPre::new).map_err(|error| {
            TransformError::Contract { transform: name.clone(), source: error.into_boxed_dyn_error() }
        })?;
        let sha256 = hex::encode(sha2::Sha256::digest(&wasm));
        Ok(Transform::new(config.clone(), pre, self.clock.clone(), cache_outcome, sha256))
    }
}
