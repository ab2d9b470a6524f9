//! `[delivery]`: how hard Ferry pushes and how patiently it retries.

use std::time::Duration;

use serde::Deserialize;

use super::defaults;
use super::parallelism::{MAX_TRANSFORM_INSTANCES, TransformInstances};
use super::problems::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Batches polled and not yet written, at once. Unset: one per
    /// transform instance and one per write in flight (see [`Self::window`]).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Instances of the transform chain running side by side; their results
    /// rejoin in source order.
    #[serde(default)]
    pub transform_instances: TransformInstances,
    /// How long written batches' positions may wait to be committed
    /// together; `0s` commits after every batch.
    #[serde(default = "defaults::commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// The first pause after a transient failure; it doubles each time.
    #[serde(default = "defaults::retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// The longest pause between retries. Ferry retries transient failures
    /// for as long as it runs: data is never dropped for being late.
    #[serde(default = "defaults::retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long one call to a server (a poll, a write, a commit) may take
    /// before it counts as a transient failure and is retried. Retries are
    /// safe: writes are idempotent.
    #[serde(default = "defaults::call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,
    /// What happens when a transform traps, times out or runs out of memory
    /// on most records, rather than on a poison record now and then.
    #[serde(default)]
    pub on_broken_transform: OnBrokenTransform,
}

/// The policy for a transform that stops on most records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBrokenTransform {
    /// Hold the batch, report the transform broken, and try the batch again
    /// after a pause (`retry_initial`, doubling up to `retry_max`). Nothing
    /// is dead-lettered or committed meanwhile; a reload with a fixed
    /// transform carries on from the held batch.
    #[default]
    BackOff,
    /// Stop the pipeline with the error; nothing after the last committed
    /// batch is committed.
    Stop,
    /// Report it, and dead-letter every record that stops, as for poison
    /// records.
    DeadLetter,
}

impl OnBrokenTransform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackOff => "back_off",
            Self::Stop => "stop",
            Self::DeadLetter => "dead_letter",
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_in_flight: None,
            transform_instances: TransformInstances::default(),
            commit_interval: defaults::commit_interval(),
            retry_initial: defaults::retry_initial(),
            retry_max: defaults::retry_max(),
            call_timeout: defaults::call_timeout(),
            on_broken_transform: OnBrokenTransform::default(),
        }
    }
}

impl DeliveryConfig {
    /// Batches polled and not yet written, at most: `max_in_flight` if set,
    /// otherwise enough to keep every transform instance and every write
    /// lane busy (one each: the default of one instance and one write gives
    /// the two of a single-threaded pipeline).
    pub fn window(&self, instances: usize, writes: usize) -> usize {
        self.max_in_flight.unwrap_or(instances + writes)
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self.max_in_flight.is_some_and(|window| window == 0 || window > 64) {
            problems.add("delivery.max_in_flight", "must be between 1 and 64");
        }
        if self.transform_instances.is_too_many() {
            problems.add("delivery.transform_instances", format!("must be at most {MAX_TRANSFORM_INSTANCES}"));
        }
        if self.retry_initial.is_zero() {
            problems.add("delivery.retry_initial", "must be above 0");
        }
        if self.retry_max < self.retry_initial {
            problems.add("delivery.retry_max", "must be at least retry_initial");
        }
        if self.call_timeout < Duration::from_millis(100) {
            problems.add("delivery.call_timeout", "must be at least 100ms");
        }
    }
}
