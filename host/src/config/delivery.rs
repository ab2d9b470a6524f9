//! `[delivery]`: how hard Ferry pushes and how patiently it retries.

use std::time::Duration;

use serde::Deserialize;

use super::defaults;
use super::problems::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Batches between the source and the sink at once.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
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
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_in_flight: defaults::max_in_flight(),
            retry_initial: defaults::retry_initial(),
            retry_max: defaults::retry_max(),
            call_timeout: defaults::call_timeout(),
        }
    }
}

impl DeliveryConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self.max_in_flight == 0 || self.max_in_flight > 64 {
            problems.add("delivery.max_in_flight", "must be between 1 and 64");
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
