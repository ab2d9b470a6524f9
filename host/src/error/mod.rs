//! Errors shared across the pipeline: failures talking to a server (and
//! which of them are transient), and errors written as one line.

mod chain;
mod redact;
mod service;

pub use chain::error_chain;
pub use redact::{is_credential_key, redact, redact_toml_line};
pub use service::{BoxError, FailureKind, ServiceError, mongo_code_is_transient, with_timeout};
