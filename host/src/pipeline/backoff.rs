//! Capped exponential backoff for transient failures: Ferry waits, logs,
//! and tries again for as long as it runs, holding its position.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::DeliveryConfig;
use crate::error::ServiceError;
use crate::error::error_chain;

/// The wait was cut short by shutdown.
#[derive(Debug, PartialEq, Eq)]
pub struct Interrupted;

pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    pub fn new(delivery: &DeliveryConfig) -> Self {
        Self { initial: delivery.retry_initial, max: delivery.retry_max, next: delivery.retry_initial, attempts: 0 }
    }

    /// The pause before the next attempt; each call doubles it, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempts += 1;
        delay
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }

    /// Logs `error` and sleeps the next delay, unless shutdown comes first.
    pub async fn wait(&mut self, error: &ServiceError, shutdown: &CancellationToken) -> Result<(), Interrupted> {
        let delay = self.next_delay();
        tracing::warn!(attempt = self.attempts, retry_in = ?delay, "{}", error_chain(error));
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
        let mut backoff = Backoff::new(&delivery);
        let delays: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn given_shutdown_then_the_wait_ends_early() {
        let mut backoff =
            Backoff::new(&DeliveryConfig { retry_initial: Duration::from_secs(60), ..DeliveryConfig::default() });
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let error = ServiceError::fatal("test", "boom");
        assert_eq!(backoff.wait(&error, &shutdown).await, Err(Interrupted));
    }
}
