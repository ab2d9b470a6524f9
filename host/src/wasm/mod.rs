//! Runs user transforms: WebAssembly components built against
//! `wit/transform.wit`, each fenced by a deadline and a memory limit.

mod cache;
mod call_cost;
mod chain;
mod engine;
mod epoch_clock;
mod error;
mod guest_output;
mod host_state;
mod limits;
mod transform;

pub use cache::{CacheOutcome, CompileCache};
pub use chain::{Answer, TransformChain, run_answers};
pub use engine::{EngineError, WasmRuntime};
pub use epoch_clock::EPOCH_TICK;
pub use error::{TransformError, WasmCause};
pub use transform::Transform;
