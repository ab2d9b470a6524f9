//! The progress line: every so often, one log line per pipeline — its
//! state, its rate, how far behind it is, and the dead letters since the
//! last line — so a person watching a terminal sees it working.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::telemetry::{CountsReport, PositionReport, Telemetry};

pub struct Progress {
    every: Option<Duration>,
    /// When the last line was written, and each pipeline's counts then.
    last: Instant,
    counts: BTreeMap<String, CountsReport>,
}

impl Progress {
    pub fn new(every: Option<Duration>) -> Self {
        Self { every, last: Instant::now(), counts: BTreeMap::new() }
    }

    /// Resolves when the next lines are due (never, when they are off).
    pub async fn tick(&self) {
        match self.every {
            Some(every) => tokio::time::sleep_until((self.last + every).into()).await,
            None => std::future::pending().await,
        }
    }

    /// Writes one line per pipeline.
    pub fn report(&mut self, telemetry: &Telemetry) {
        let elapsed = self.last.elapsed().as_secs_f64().max(0.001);
        self.last = Instant::now();
        let now = SystemTime::now();
        for pipeline in telemetry.pipelines() {
            let report = pipeline.report(now);
            let before = self.counts.insert(report.name.clone(), report.counts).unwrap_or_default();
            let rate = (report.counts.records_read - before.records_read) as f64 / elapsed;
            let dead_letters = report.counts.records_dead_lettered - before.records_dead_lettered;
            let behind = match &report.position {
                PositionReport::Iggy { lag_messages: Some(lag), .. } => format!("lag {lag} messages"),
                PositionReport::ChangeStream { seconds_behind: Some(behind), .. } => format!("{behind:.1}s behind"),
                _ => "lag unknown".to_owned(),
            };
            tracing::info!(
                pipeline = %report.name,
                state = report.state.as_str(),
                records_per_second = format!("{rate:.0}"),
                dead_letters,
                "{}: {}, {rate:.0} records/s, {behind}, {dead_letters} dead letters since the last line",
                report.name,
                report.state.as_str(),
            );
        }
    }
}
