//! Log output: text for people or JSON for collectors, on stderr.
//!
//! Colours only when stderr is a terminal: a log redirected to a file or a
//! collector gets no escape codes. `FERRY_LOG` takes `EnvFilter` directives
//! (`info`, `ferry=debug,iggy=info`); without it Ferry logs at `info` and
//! leaves out the Iggy SDK's own lines, which on every reconnect attempt
//! repeat at ERROR what Ferry reports once as a warning with its retry.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event, for people.
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// The filter when `FERRY_LOG` is not set.
const DEFAULT_FILTER: &str = "info,iggy=off,iggy_common=off,iggy_binary_protocol=off";

/// Installs the process's logger.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
}
