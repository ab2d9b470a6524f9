//! Ferry's log lines as a test can see them: every event logged in this
//! test process, kept in memory, so a test can wait for a line that says
//! something happened, or check that a line never said something.
//!
//! Tests of one binary run in parallel and share this, so a test looks for
//! what only it can cause (its own unique stream or pipeline name).

use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Every line logged so far, as `LEVEL target: message field=value ...`.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The layer `init_logging` installs.
pub(crate) struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Line(format!("{} {}:", metadata.level(), metadata.target()));
        event.record(&mut line);
        LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line.0);
    }
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = match field.name() {
            "message" => write!(self.0, " {value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = match field.name() {
            "message" => write!(self.0, " {value}"),
            name => write!(self.0, " {name}={value}"),
        };
    }
}

/// The lines logged so far that contain `text`.
pub fn containing(text: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .filter(|line| line.contains(text))
        .cloned()
        .collect()
}

/// Waits until a line containing `text` is logged, and returns it.
pub async fn wait_for(text: &str, deadline: Duration) -> String {
    crate::wait::until(&format!("a log line with {text:?}"), deadline, || async { containing(text).pop() }).await
}
