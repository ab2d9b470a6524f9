//! What one transform instance's store holds: its WASI context (granting
//! nothing unless the pipeline asks), its memory fence, and the host side of
//! the `logging` import.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::error::TransformError;
use super::guest_output::GuestOutput;
use super::limits::MemoryFence;
use crate::config::TransformConfig;
use crate::contract::logging::{self, Field, Level};
use crate::contract::types;

pub(crate) struct HostState {
    transform: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) fence: MemoryFence,
    /// The guest's stdout and stderr when `stdio` is granted.
    outputs: Vec<GuestOutput>,
}

impl HostState {
    /// A fresh state for one instance of `config`'s transform.
    pub(crate) fn new(transform: &Arc<str>, config: &TransformConfig) -> Result<Self, TransformError> {
        let grants = &config.grants;
        let mut wasi = WasiCtx::builder();
        let mut outputs = Vec::new();
        if grants.stdio {
            let stdout = GuestOutput::new(transform.clone(), "stdout");
            let stderr = GuestOutput::new(transform.clone(), "stderr");
            wasi.stdout(stdout.clone()).stderr(stderr.clone());
            outputs = vec![stdout, stderr];
        }
        for name in &grants.env {
            if let Ok(value) = std::env::var(name) {
                wasi.env(name, value);
            }
        }
        for dir in &grants.dirs {
            let perms = if dir.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            wasi.preopened_dir(&dir.host, &dir.guest, perms).map_err(|source| TransformError::Grant {
                transform: transform.to_string(),
                source: source.into_boxed_dyn_error(),
            })?;
        }
        if grants.network {
            wasi.inherit_network().allow_ip_name_lookup(true);
        }
        Ok(Self {
            transform: transform.clone(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            fence: MemoryFence::new(config.memory_limit),
            outputs,
        })
    }

    /// Logs any unfinished line the guest left in stdout or stderr.
    pub(crate) fn flush_output(&self) {
        for output in &self.outputs {
            output.flush_partial();
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl logging::Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<Field>) {
        // tracing's field names are static, so the guest's pairs join the
        // message: "masking fields fields=email,phone".
        let mut line = message;
        for field in &fields {
            line.push_str(&format!(" {}={}", field.key, field.value));
        }
        let transform = &*self.transform;
        match level {
            Level::Trace => tracing::trace!(target: "ferry::guest", transform, "{line}"),
            Level::Debug => tracing::debug!(target: "ferry::guest", transform, "{line}"),
            Level::Info => tracing::info!(target: "ferry::guest", transform, "{line}"),
            Level::Warn => tracing::warn!(target: "ferry::guest", transform, "{line}"),
            Level::Error => tracing::error!(target: "ferry::guest", transform, "{line}"),
        }
    }
}

/// The `types` interface has no functions; linking it needs this marker.
impl types::Host for HostState {}
