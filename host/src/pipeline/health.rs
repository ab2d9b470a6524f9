//! Telling a broken transform from a few poison records: how the most
//! recent records fared, across batches.
//!
//! A poison record traps or hangs now and then and is dead-lettered; its
//! neighbours go on. A broken transform (a bad build, a bug every record
//! meets) traps or hangs on most records, and dead-lettering them one
//! `record_timeout` at a time would grind for hours and bury the data in
//! dead letters. The pipeline's `on_broken_transform` policy says what
//! happens instead.

use std::collections::VecDeque;

pub use crate::telemetry::events::Broken;

/// How many of the most recent records are judged.
const WINDOW: usize = 200;
/// Fewer records than this say nothing yet.
const ENOUGH: usize = 50;

/// The verdicts of the most recent records: whether each ran, or stopped
/// its transform (a trap, a timeout, running out of memory).
#[derive(Debug, Default)]
pub struct TransformHealth {
    recent: VecDeque<bool>,
    stopped: usize,
    /// The transform that stopped most recently.
    culprit: Option<String>,
}

impl TransformHealth {
    /// `records` ran without stopping their transform.
    pub fn ran(&mut self, records: usize) {
        for _ in 0..records.min(WINDOW) {
            self.push(false);
        }
    }

    /// A record stopped `transform`.
    pub fn stopped(&mut self, transform: &str) {
        self.push(true);
        if self.culprit.as_deref() != Some(transform) {
            self.culprit = Some(transform.to_owned());
        }
    }

    /// Whether the recent records say the transform is broken.
    pub fn broken(&self) -> Option<Broken> {
        let seen = self.recent.len();
        (seen >= ENOUGH && self.stopped * 2 > seen).then(|| Broken {
            transform: self.culprit.clone().unwrap_or_default(),
            stopped: self.stopped,
            seen,
        })
    }

    fn push(&mut self, stopped: bool) {
        if self.recent.len() == WINDOW && self.recent.pop_front() == Some(true) {
            self.stopped -= 1;
        }
        self.recent.push_back(stopped);
        self.stopped += usize::from(stopped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_few_poison_records_among_many_then_not_broken() {
        let mut health = TransformHealth::default();
        for _ in 0..20 {
            health.ran(99);
            health.stopped("enrich");
        }
        assert_eq!(health.broken(), None);
    }

    #[test]
    fn given_too_few_records_then_no_verdict_yet() {
        let mut health = TransformHealth::default();
        (0..ENOUGH - 1).for_each(|_| health.stopped("enrich"));
        assert_eq!(health.broken(), None);
        health.stopped("enrich");
        assert_eq!(health.broken(), Some(Broken { transform: "enrich".into(), stopped: ENOUGH, seen: ENOUGH }));
    }

    #[test]
    fn given_most_recent_records_stop_then_broken_and_healthy_again_once_they_run() {
        let mut health = TransformHealth::default();
        health.ran(1000);
        for _ in 0..WINDOW / 2 {
            health.stopped("redact");
        }
        assert_eq!(health.broken(), None, "exactly half is not most");
        health.stopped("redact");
        let broken = health.broken().expect("most of the window stopped");
        assert_eq!((broken.stopped, broken.seen), (WINDOW / 2 + 1, WINDOW));
        assert_eq!(
            broken.to_string(),
            "transform `redact` looks broken: 101 of the last 200 records trapped, timed out or ran out of memory"
        );
        health.ran(WINDOW);
        assert_eq!(health.broken(), None);
    }
}
