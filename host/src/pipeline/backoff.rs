//! Capped exponential backoff for transient failures: Ferry waits, reports
//! the retry, and tries again for as long as it runs, holding its position.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::DeliveryConfig;
use crate::error::ServiceError;
use crate::telemetry::events::RetryScheduled;
use crate::telemetry::{PipelineTelemetry, Stage};

/// The wait was cut short by shutdown.
#[derive(Debug, PartialEq, Eq)]
pub struct Interrupted;

pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempts: u32,
    /// Where retries are reported.
    telemetry: PipelineTelemetry,
}

impl Backoff {
    pub fn new(delivery: &DeliveryConfig, telemetry: &PipelineTelemetry) -> Self {
        Self {
            initial: delivery.retry_initial,
            max: delivery.retry_max,
            next: delivery.retry_initial,
            attempts: 0,
            telemetry: telemetry.clone(),
        }
    }

    /// The pause before the next attempt; each call doubles it, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        // Saturating: a pipeline may ask for pauses of centuries.
        self.next = self.next.saturating_mul(2).min(self.max);
        self.attempts += 1;
        delay
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }

    /// Reports `error` (which `stage` met) and sleeps the next delay,
    /// unless shutdown comes first.
    pub async fn wait(
        &mut self,
        stage: Stage,
        error: &ServiceError,
        shutdown: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let delay = self.next_delay();
        RetryScheduled { stage, error, attempt: self.attempts, delay }.emit(&self.telemetry);
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = shutdown.cancelled() => Err(Interrupted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_repeated_failures_then_delays_double_up_to_the_cap_and_reset() {
        let delivery = DeliveryConfig {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(350),
            ..DeliveryConfig::default()
        };
        let mut backoff = Backoff::new(&delivery, &PipelineTelemetry::detached("p"));
        let delays: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn given_a_cap_past_what_doubling_can_reach_then_delays_saturate() {
        // Valid in a pipeline file; doubling the pause overflowed and panicked.
        let huge = Duration::MAX / 2 + Duration::from_secs(1);
        let delivery = DeliveryConfig { retry_initial: huge, retry_max: Duration::MAX, ..DeliveryConfig::default() };
        let mut backoff = Backoff::new(&delivery, &PipelineTelemetry::detached("p"));
        assert_eq!((backoff.next_delay(), backoff.next_delay()), (huge, Duration::MAX));
    }

    #[tokio::test]
    async fn given_shutdown_then_the_wait_ends_early() {
        let delivery = DeliveryConfig { retry_initial: Duration::from_secs(60), ..DeliveryConfig::default() };
        let telemetry = PipelineTelemetry::detached("p");
        let mut backoff = Backoff::new(&delivery, &telemetry);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let error = ServiceError::not_yet("writing", "no primary");
        assert_eq!(backoff.wait(Stage::Write, &error, &shutdown).await, Err(Interrupted));
        let status = telemetry.status();
        assert_eq!(status.failing["write"].message, "writing: no primary", "the retry is in the status");
    }
}
